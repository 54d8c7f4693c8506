"""LocalTarget: the reference stack as processes on this machine, under its state directory.

The class answers the Target seam and runs the stack's lifecycle (up, down, destroy); what
each part is lives beside it: options.py, records.py, specs.py, proxies.py, data_fs.py.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from urllib.parse import urlsplit

from opsdrill.errors import CapabilityMissing, UsageError
from opsdrill.state import Secrets
from opsdrill.targets.base import Service, Target
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
from opsdrill.targets.local.lifecycle import PG_DIR, Lifecycle
from opsdrill.targets.local.process_service import ProcessService, ProcessSpec
from opsdrill.targets.local.rewiring import Rewiring
from opsdrill.targets.local.worker_cgroup import WorkerCgroup
from opsdrill.targets.model import Endpoints, ExecResult, MemoryUsage, ProxyLink
from opsdrill.targets.postgres import Cluster, find_bindir, run_user

__all__ = ["LocalTarget"]


class LocalTarget(Rewiring, Lifecycle, Target):
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


def cuda_device_present() -> bool:
    """A CUDA device node on this machine (cheap: no torch import, no CUDA context)."""
    return Path("/dev/nvidiactl").exists() or any(Path("/dev").glob("nvidia[0-9]*"))
