"""The embedded stack's whole-stack operations: up (created, seeded and trained the first
time), down, destroy, waiting until healthy. A mixin of `LocalTarget`, which holds the parts."""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import psycopg

from opsdrill.errors import ServiceError, StartTimeout, UsageError
from opsdrill.polling import poll
from opsdrill.state import STATE_FILE, Secrets
from opsdrill.targets import first_data
from opsdrill.targets.base import Service
from opsdrill.targets.drill_parts import Say
from opsdrill.targets.local import (
    proxies,
    ray_service,
    specs,
)
from opsdrill.targets.local.data_fs import DataFilesystem
from opsdrill.targets.local.options import StackOptions
from opsdrill.targets.local.records import StackRecords, alive
from opsdrill.targets.local.worker_cgroup import WorkerCgroup
from opsdrill.targets.model import ServiceStatus
from opsdrill.targets.postgres import Cluster

__all__ = ["PG_DIR", "Lifecycle"]

PG_DIR = "pg"  # the cluster's root under the state directory (data/, socket/)


class Lifecycle(StackRecords):
    """`up`, `down`, `destroy` and the rest of a stack's life, over its recorded processes."""

    state_dir: Path
    options: StackOptions
    # what LocalTarget provides
    services: Mapping[str, Service]
    cluster: Cluster
    secrets: Secrets
    data_fs: DataFilesystem | None
    worker_cgroup: WorkerCgroup | None
    toxiproxy_url: str | None
    proxies_config: Callable[[], list[dict[str, object]]]
    missing_monitoring: Callable[[], list[str]]
    status: Callable[[], list[ServiceStatus]]

    def exists(self) -> bool:
        """True once the stack's database cluster was created. Not the state file: asking for
        an endpoint (the capability check at collection does) records ports in it first.
        Read from the path alone: `self.cluster` would allocate a port, creating the dir."""
        return (self.state_dir / PG_DIR / "data" / "PG_VERSION").exists()

    def is_up(self) -> bool:
        return all(s.healthy() for s in self.services.values())

    def clean_stale(self, say: Say = print) -> list[str]:
        """Forget services whose recorded process is gone (a killed run); return their names."""
        stale, stale_pids = [], {}
        with self._locked() as state:
            for name, rec in list(state.services.items()):
                if not alive(rec):
                    stale.append(name)
                    stale_pids[name] = rec.pid
                    del state.services[name]
        if stale:
            say(f"stale state from an earlier run: {', '.join(stale)} no longer running; cleaned")
        if "db" in stale or self.get_record("db") is None:
            self.cluster.remove_stale_pidfile(stale_pids.get("db"))
        return stale

    def up(self, *, train: bool = True, say: Say = print) -> None:
        """Start every service not already running; first time: create, seed and train."""
        self.clean_stale(say)
        self._apply_options(say)
        if missing := self.missing_monitoring():
            packages = " ".join(specs.MONITORING_BINARIES[m] for m in missing)
            say(f"monitoring not installed, skipped: {', '.join(missing)} "
                f"(apt-get install {packages})")  # fmt: skip
        cluster = self.cluster
        cluster.init()
        for name, service in self.services.items():
            if service.is_running():
                # a running but unhealthy service is a finding for the checks, not a reason
                # to wait for it here or to restart it behind the user's back
                health = "" if service.healthy() else "  (running, but NOT healthy)"
                say(f"{name:<18} already running   pid {service.pid()}{health}")
                continue
            t0 = time.monotonic()
            service.start(timeout=120.0 if name in specs.SLOW_STARTERS else 60.0)
            say(f"{name:<18} started in {time.monotonic() - t0:5.1f} s  pid {service.pid()}  "
                f"{service.url or ''}")  # fmt: skip
            if name == "db":
                self._bootstrap_db()
                if self.options.proxy and "proxy" not in self.services:
                    proxies.populate_external(self.toxiproxy_url, self.proxies_config())
        if not self._state().initialized:
            self._first_data(train=train, say=say)

    def _apply_options(self, say: Say) -> None:
        """Mount the data fs and create the worker cgroup before the app starts; save them."""
        saved = StackOptions.load(self.state_dir)
        running = [n for n, s in self.services.items() if s.is_running()]
        if saved is not None and saved != self.options and running:
            raise UsageError(
                f"the stack in {self.state_dir} runs with {saved}, not {self.options}; "
                "run 'opsdrill down' first to change its options"
            )
        if (fs := self.data_fs) is not None:
            if reason := DataFilesystem.supported():
                raise UsageError(f"cannot give the stack a data filesystem: {reason}; "
                                 f"start it without --data-fs-size")  # fmt: skip
            if "api" in running and not fs.mounted():
                raise UsageError("the app already runs without the data filesystem; "
                                 "run 'opsdrill down' first")  # fmt: skip
            fs.mount(say)
        if (cgroup := self.worker_cgroup) is not None:
            cgroup.create()
        self.options.save(self.state_dir)

    def _bootstrap_db(self) -> None:
        cluster = self.cluster
        for dbname, sql in cluster.bootstrap_sql(self.secrets.db_password):
            with (
                psycopg.connect(cluster.admin_conninfo(dbname), autocommit=True) as conn,
                contextlib.suppress(psycopg.errors.DuplicateDatabase),
            ):
                conn.execute(sql)  # type: ignore[arg-type]

    def _first_data(self, *, train: bool, say: Say) -> None:
        t0 = time.monotonic()
        first_data.seed(self)
        say(f"{'seed':<18} series loaded in {time.monotonic() - t0:4.1f} s")
        if train:
            t0 = time.monotonic()
            run = first_data.train_first_model(self)
            say(f"{'first model':<18} run {run['run_id']} {run['model_name']} "
                f"completed in {time.monotonic() - t0:4.1f} s")  # fmt: skip
        say(f"{'first backup':<18} {first_data.backup(self)}")
        with self._locked() as state:
            state.initialized = train

    def down(self, say: Say = print) -> None:
        """Stop every service by pid, in reverse start order."""
        errors = []
        for name in reversed(list(self.services)):
            service = self.services[name]
            if not service.is_running():
                service.stop()  # forget a stale record
                continue
            pid = service.pid()
            try:
                service.stop()
                say(f"{name:<18} stopped (pid {pid})")
            except ServiceError as exc:
                errors.append(str(exc))
        if errors:
            raise ServiceError("; ".join(errors))
        self._release_options(say)

    def _release_options(self, say: Say) -> None:
        """After the app has stopped: unmount the data fs, remove the worker cgroup."""
        if (fs := self.data_fs) is not None:
            fs.unmount(say)
        if (cgroup := self.worker_cgroup) is not None:
            cgroup.remove()

    def destroy(self) -> None:
        """Stop everything and delete the state directory."""
        self.down(say=lambda _: None)
        if (fs := self.data_fs) is not None and os.path.ismount(fs.mountpoint):
            raise ServiceError(f"{fs.mountpoint} is still mounted; not deleting {self.state_dir}")
        if (self.state_dir / STATE_FILE).exists():
            shutil.rmtree(self.state_dir)
        shutil.rmtree(ray_service.temp_dir(self.state_dir), ignore_errors=True)  # if outside

    def wait_healthy(self, timeout: float = 30.0) -> None:
        """Poll until every service answers its readiness probe."""
        if poll(lambda: self.is_up() or None, timeout, interval=0.1) is None:
            bad = [s.name for s in self.status() if not s.healthy]
            raise StartTimeout(f"services not healthy after {timeout:.0f} s: {', '.join(bad)}")
