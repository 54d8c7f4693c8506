"""LocalTarget: the reference stack as processes on this machine, under its state directory.

The class answers the Target seam and runs the stack's lifecycle (up, down, destroy); what
each part is lives beside it: options.py, records.py, specs.py, proxies.py, data_fs.py.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit

import psycopg

from opsdrill.errors import CapabilityMissing, ServiceError, StartTimeout, UsageError
from opsdrill.polling import poll
from opsdrill.state import STATE_FILE, Secrets
from opsdrill.targets import first_data
from opsdrill.targets.base import ProxyHops, Service, Target, cuda_device_present
from opsdrill.targets.drill_parts import Say
from opsdrill.targets.files import ServiceFiles
from opsdrill.targets.local import (
    mlflow_service,
    options,
    pid_file,
    proxies,
    ray_service,
    redis_service,
    specs,
)
from opsdrill.targets.local.data_fs import IMAGE, DataFilesystem
from opsdrill.targets.local.files import LocalFiles
from opsdrill.targets.local.options import StackOptions
from opsdrill.targets.local.parts import DataFsInPlace, ProxyInPlace
from opsdrill.targets.local.process_service import ProcessService, ProcessSpec
from opsdrill.targets.local.records import StackRecords, alive
from opsdrill.targets.local.worker_cgroup import WorkerCgroup
from opsdrill.targets.model import Endpoints, ExecResult, MemoryUsage, ProxyLink
from opsdrill.targets.postgres import Cluster, find_bindir, run_user

__all__ = ["LocalTarget"]

PG_DIR = "pg"  # the cluster's root under the state directory (data/, socket/)


class LocalTarget(StackRecords, Target):
    """The reference stack on this machine. Never production."""

    name = "local"
    production = False
    dedicated_host = False  # shares the machine with opsdrill itself and the test runner
    python = sys.executable  # the app runs with opsdrill's own interpreter

    def __init__(
        self,
        state_dir: Path,
        *,
        monitoring: bool | None = None,
        data_fs_size: str | None = None,
        proxy: bool | None = None,
        worker_cgroup: bool | None = None,
        redis: bool | None = None,
        mlflow: bool | None = None,
    ) -> None:
        """Opt-ins left None come from the environment, else from the stack's options.json."""
        self.state_dir = state_dir.absolute()
        self._services: dict[str, Service] | None = None
        self.options = options.resolve(
            self.state_dir,
            data_fs_size=data_fs_size,
            proxy=proxy,
            worker_cgroup=worker_cgroup,
            monitoring=monitoring,
            redis=redis,
            mlflow=mlflow,
        )
        self.monitoring = self.options.monitoring

    @property
    def data_fs(self) -> DataFilesystem | None:
        """The size-limited filesystem under NF_HOME, when the stack has one."""
        if self.options.data_fs_size is None:
            return None
        return DataFilesystem(self.state_dir / IMAGE, self.home, self.options.data_fs_size)

    @property
    def worker_cgroup(self) -> WorkerCgroup | None:
        """The memory cgroup training workers join, when the stack has one."""
        path = self.options.worker_cgroup
        return WorkerCgroup.at(Path(path)) if path else None

    @property
    def toxiproxy_url(self) -> str | None:
        """Toxiproxy's API: OPSDRILL_TOXIPROXY_URL if set, else the proxy service's."""
        if not self.options.proxy:
            return None
        return os.environ.get("OPSDRILL_TOXIPROXY_URL") or f"http://127.0.0.1:{self._port('proxy')}"

    @property
    def proxied_api_url(self) -> str | None:
        """The API as clients behind the `api` proxy see it (client -> app network faults)."""
        return f"http://127.0.0.1:{self._port('proxy_api')}" if self.options.proxy else None

    def proxies_config(self) -> list[dict[str, object]]:
        """The Toxiproxy proxies: `postgres` (app -> database) and `api` (clients -> app)."""
        return proxies.config(self._port)

    # -- the seam (Target): what faults and procedures ask of any target ---------------------
    def state_home(self) -> Path:
        return self.state_dir

    @property
    def spec(self) -> str:
        return f"local:{self.state_dir}"

    @property
    def journal_dir(self) -> Path:
        return self.state_dir

    @property
    def process_scope(self) -> Path:
        """Every service, and whatever `exec` starts, logs under the state directory."""
        return self.state_dir

    @property
    def service_control(self) -> bool:
        return True

    @property
    def has_gpu(self) -> bool:
        return cuda_device_present()

    @property
    def kind(self) -> str:
        return "embedded"

    def exec(
        self,
        service: str,
        argv: Sequence[str],
        *,
        timeout: float = 60.0,
        user: str | None = None,
        env: Mapping[str, str] | None = None,
        detach: bool = False,
    ) -> ExecResult:
        """Every service runs on this machine: a subprocess in the app's environment."""
        self.service(service)  # a clear error for a service this stack lacks
        full_env = {**self.app_env(), **(env or {})}
        cwd = self.home if self.home.is_dir() else None  # a stack not created yet has none
        argv = tuple(argv)
        if detach:
            log = self.state_dir / "logs" / f"exec-{Path(argv[0]).name}.log"
            log.parent.mkdir(parents=True, exist_ok=True)
            with open(log, "ab") as out:
                proc = subprocess.Popen(
                    argv, env=full_env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL, start_new_session=True,
                )  # fmt: skip
            return ExecResult(argv, 0, str(proc.pid))
        try:
            done = subprocess.run(
                argv, env=full_env, cwd=cwd, capture_output=True, text=True,
                timeout=timeout,
            )  # fmt: skip
        except subprocess.TimeoutExpired as exc:
            return ExecResult(argv, 124, str(exc.stdout or ""), f"timed out after {timeout:.0f} s")
        return ExecResult(argv, done.returncode, done.stdout, done.stderr)

    def ops(self, *args: str, timeout: float = 600.0, database: str | None = None) -> ExecResult:
        """`python -m nf_auto_runner.ops ARGS` on the direct database link."""
        dsn = self.endpoints.dsn
        if database is not None:
            dsn = urlsplit(dsn)._replace(path=f"/{database}").geturl()
        env = {"DATABASE_URL": dsn}
        return self.exec("api", [sys.executable, "-m", "nf_auto_runner.ops", *args],
                         timeout=timeout, env=env)  # fmt: skip

    def files(self, service: str) -> ServiceFiles:
        self.service(service)
        return LocalFiles()

    def clear_leftovers(self, service: str) -> list[str]:
        """The app writes a pid file (NF_HOME/run/app.pid); the other services none."""
        if service != "api":
            return []
        return pid_file.clear_leftovers(self.home / "run" / "app.pid", self.home)

    def set_memory_limit(self, service: str, limit_bytes: int | None) -> int | None:
        """Only the training workers have a limit of their own here (their cgroup)."""
        cgroup = self._memory_cgroup(service)
        before = cgroup.limit_bytes()
        if limit_bytes is not None and (before is None or limit_bytes <= before):
            cgroup.lower_to(limit_bytes)
            return before
        value = str(limit_bytes) if limit_bytes is not None else None
        # raising: restore() writes v1's memsw before the limit (memsw >= limit always)
        cgroup.restore(
            {"max": value or "max", "swap_max": None if value else "max"} if cgroup.version == 2
            else {"limit": value or "-1", "memsw": (value or "-1") if cgroup.limits().get("memsw")
                  else None}
        )  # fmt: skip
        return before

    def oom_kills(self, service: str) -> int:
        return self._memory_cgroup(service).oom_kills()

    def memory(self, service: str) -> MemoryUsage:
        cgroup = self._memory_cgroup(service)
        return MemoryUsage(cgroup.limit_bytes(), cgroup.peak_bytes(), len(cgroup.pids()))

    def _memory_cgroup(self, service: str) -> WorkerCgroup:
        cgroup = self.worker_cgroup
        if service != "worker" or cgroup is None or not cgroup.path.is_dir():
            raise CapabilityMissing(
                f"the embedded stack has a memory limit for its training workers only, and "
                f"{'not ' + repr(service) if service != 'worker' else 'no worker cgroup'} "
                "(it needs root and a memory controller; restart the stack after creating it)"
            )
        return cgroup

    def proxy_for(self, link: str) -> ProxyLink:
        url = self.toxiproxy_url
        if url is None:
            return super().proxy_for(link)
        if link not in proxies.LINKS:
            raise UsageError(f"unknown link {link!r}: use one of {', '.join(proxies.LINKS)}")
        return ProxyLink(toxiproxy_url=url, proxy=proxies.LINKS[link], link=link)

    # -- parts a drill puts in place for itself (DrillParts) --------------------------------
    @contextlib.contextmanager
    def ensure_proxy(self, say: Say = print) -> Iterator[ProxyHops]:
        """Toxiproxy between app and database and before the API; added for the context when
        the stack was started without it (the app restarts onto it, and back afterwards)."""
        if self.options.proxy:
            yield self._proxy_hops()
            return
        say("the stack has no Toxiproxy: putting the embedded one between the app and "
            "PostgreSQL and in front of the API for this session (the app restarts onto it; "
            "its direct wiring is restored afterwards)")  # fmt: skip
        with ProxyInPlace(self):
            yield self._proxy_hops()

    def _proxy_hops(self) -> ProxyHops:
        url, api = self.toxiproxy_url, self.proxied_api_url
        assert url is not None and api is not None  # the proxy option is on
        return ProxyHops(toxiproxy_url=url, app_dsn=self.app_dsn(), api_url=api)

    def install_proxy(self) -> None:
        """Turn the proxy option on: start the proxy, restart a running app through it."""
        self._set_options(proxy=True)
        if (proxy := self.services.get("proxy")) is not None:
            proxy.start()
        else:  # OPSDRILL_TOXIPROXY_URL: an external server we only populate
            proxies.populate_external(self.toxiproxy_url, self.proxies_config())
        self._restart_app_if_running()

    def remove_proxy(self) -> None:
        """Turn the proxy option off: the app back on its direct DSN, the proxy stopped."""
        proxy = self.services.get("proxy")
        self._set_options(proxy=False)
        self._restart_app_if_running()
        if proxy is not None:
            proxy.stop()

    @contextlib.contextmanager
    def ensure_data_fs(self, size: str, say: Say = print) -> Iterator[Path]:
        """NF_HOME on a size-limited filesystem; added for the context when the stack was
        started without one (the app restarts onto it; the home is copied there and back)."""
        fs = self.data_fs
        if fs is not None:
            if not fs.mounted():
                raise CapabilityMissing(
                    f"the stack in {self.state_dir} has a data filesystem that is not mounted; "
                    "run 'opsdrill up' to mount it"
                )
            yield self.home
            return
        if reason := DataFilesystem.supported():
            raise CapabilityMissing(f"cannot give the stack a data filesystem here: {reason}")
        say(f"the stack has no size-limited data filesystem: moving its home onto a {size} "
            "ext4 image for this session (the app restarts onto it; the home is moved back "
            "afterwards)")  # fmt: skip
        with DataFsInPlace(self, size=size):
            yield self.home

    def install_data_fs(self, size: str) -> None:
        """Turn the data filesystem option on: the app stopped, home moved onto the image."""
        image = self.state_dir / IMAGE
        if not os.path.ismount(self.home):
            image.unlink(missing_ok=True)  # a leftover of a half-done install: start afresh
        with self._app_stopped():
            self._set_options(data_fs_size=size)
            fs = self.data_fs
            assert fs is not None
            fs.mount(say=lambda _line: None)

    def remove_data_fs(self) -> None:
        """Turn the data filesystem option off: home copied back off the image, image gone."""
        fs = self.data_fs
        if fs is None:
            return
        with self._app_stopped():
            if fs.mounted():  # strictly: the image is mounted again below to copy it out
                fs.unmount(say=lambda _line: None, lazy=False)
            if fs.image.exists():
                fs.copy_out(self.home)
                fs.image.unlink()
            self._set_options(data_fs_size=None)

    def _set_options(self, **changes: object) -> None:
        self.options = replace(self.options, **changes)  # type: ignore[arg-type]
        self.options.save(self.state_dir)
        self._services = None  # the proxy service comes and goes with its option

    @contextlib.contextmanager
    def _app_stopped(self) -> Iterator[None]:
        """Stop a running app for the block and start it again after, however it ends."""
        api = self.services["api"]
        running = api.is_running()
        if running:
            api.stop()
        try:
            yield
        finally:
            if running:
                self.services["api"].start(timeout=120.0)

    def _restart_app_if_running(self) -> None:
        api = self.services["api"]
        if api.is_running():
            api.restart(timeout=120.0)

    # -- layout ------------------------------------------------------------------------
    @property
    def home(self) -> Path:
        return self.state_dir / "home"

    @property
    def secrets(self) -> Secrets:
        return Secrets.load_or_create(self.state_dir)

    @property
    def cluster(self) -> Cluster:
        return Cluster(self.state_dir / PG_DIR, self._port("db"), find_bindir(), run_user())

    @property
    def endpoints(self) -> Endpoints:
        url, cluster = self._url_of, self.cluster
        return Endpoints(
            api_url=f"http://127.0.0.1:{self._port('api')}",
            dsn=cluster.app_dsn(self.secrets.db_password),
            admin_dsn=cluster.admin_conninfo("ts_forecast_system"),
            api_key=self.secrets.api_key,
            prometheus_url=url("prometheus"),
            alertmanager_url=url("alertmanager"),
            mlflow_url=url("mlflow"),
            home=self.home,
            models_dir=self.home / "models",
            logs_dir=self.home / "logs" / "app",
            backups_dir=self.home / "backups",
        )

    @property
    def services(self) -> Mapping[str, Service]:
        if self._services is None:
            builders: dict[str, Callable[[], ProcessSpec]] = {
                "db": lambda: specs.db_spec(self.cluster, self._dead_pid),
                "proxy": lambda: proxies.spec(self._port, self.state_dir),
                "redis": lambda: redis_service.spec(self._port("redis"), self.state_dir / "redis"),
                "api": lambda: specs.api_spec(self._port("api"), self.home, self.app_env()),
                "mlflow": lambda: specs.mlflow_spec(
                    self.cluster, self._port("mlflow"), self.home, self.secrets.db_password
                ),
                "node_exporter": lambda: specs.node_exporter_spec(self._port("node_exporter")),
                "postgres_exporter": lambda: specs.postgres_exporter_spec(
                    self._port("postgres_exporter"), self.endpoints.dsn
                ),
                "alert_sink": lambda: specs.alert_sink_spec(
                    self._port("alert_sink"), self.state_dir
                ),
                "cgroup_exporter": lambda: specs.cgroup_exporter_spec(
                    self._port("cgroup_exporter"), self.options.worker_cgroup
                ),
                "alertmanager": lambda: specs.alertmanager_spec(self._port, self.state_dir),
                "prometheus": lambda: specs.prometheus_spec(
                    self._port, self.state_dir, self._url_of
                ),
                "ray_head": lambda: ray_service.head_spec(self._port, self.state_dir),
                "ray_worker": lambda: ray_service.worker_spec(self._port, self.state_dir),
            }
            names = [n for n in specs.ORDER if n in specs.CORE or self._optional_available(n)]
            self._services = {
                n: specs.SERVICE_CLASSES.get(n, ProcessService)(
                    n, self, builders[n], self.state_dir / "logs" / f"{n}.log"
                )
                for n in names
            }
        return self._services

    def _url_of(self, name: str) -> str | None:
        """A service's URL on loopback, None when the stack does not run it."""
        return f"http://127.0.0.1:{self._port(name)}" if name in self.services else None

    def _optional_available(self, name: str) -> bool:
        if name == "proxy":  # an external server (OPSDRILL_TOXIPROXY_URL) is not ours to run
            return self.options.proxy and not os.environ.get("OPSDRILL_TOXIPROXY_URL")
        if name in ray_service.RAY_SERVICES:  # `ray[default]` installed, OPSDRILL_RAY not 0
            return ray_service.ray_enabled()
        if name == "redis":
            return self.options.redis and redis_service.installed()
        if name == "mlflow":
            return self.options.mlflow and mlflow_service.installed()
        if name == "alert_sink":  # Alertmanager's receiver: only with an Alertmanager
            name = "alertmanager"
        if name == "cgroup_exporter":  # the workers' cgroup as a node: only with both
            return self.options.worker_cgroup is not None and self._optional_available("prometheus")
        return self.monitoring and shutil.which(specs.MONITORING_BINARIES[name]) is not None

    def absent_services(self) -> list[str]:
        return self.missing_monitoring()

    def missing_monitoring(self) -> list[str]:
        """Monitoring services skipped because their package is not installed."""
        if not self.monitoring:
            return []
        return [n for n, b in specs.MONITORING_BINARIES.items() if shutil.which(b) is None]

    def app_env(self) -> dict[str, str]:
        """The environment the app and its ops CLI run with."""
        env = dict(os.environ)
        env.update(
            NF_HOME=str(self.home),
            DATABASE_URL=self.app_dsn(),
            NF_API_KEY=self.secrets.api_key,
            MAX_PARALLEL_RUNS=env.get("MAX_PARALLEL_RUNS", "2"),
            PYTHONUNBUFFERED="1",
        )
        if "mlflow" in self.services:  # the trainer logs every run there
            env["MLFLOW_TRACKING_URI"] = f"http://127.0.0.1:{self._port('mlflow')}"
        if "ray_head" in self.services:  # where training runs can be sent (docs/RAY.md)
            env["NF_RAY_ADDRESS"] = f"127.0.0.1:{self._port('ray_gcs')}"
        if (cgroup := self.worker_cgroup) is not None:
            env["NF_WORKER_CGROUP_PROCS"] = str(cgroup.procs_file)
        if "redis" in self.services:
            env["NF_REDIS_URL"] = redis_service.url(self._port("redis"))
        return env

    def app_dsn(self) -> str:
        """The app's DATABASE_URL: through the `postgres` proxy when the stack has one."""
        dsn = self.endpoints.dsn
        if not self.options.proxy:
            return dsn
        return proxies.through(dsn, self._port("proxy_postgres"))

    # -- whole-stack operations ------------------------------------------------------------
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
