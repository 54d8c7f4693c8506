"""LocalTarget: the reference stack as processes on this machine, under its state directory."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from urllib.parse import urlsplit

from opsdrill import ports
from opsdrill.errors import CapabilityMissing, ServiceError, StartTimeout, UsageError
from opsdrill.polling import poll
from opsdrill.probes.http import http_ok
from opsdrill.probes.sql import sql_ok
from opsdrill.state import STATE_FILE, Secrets, ServiceRecord, StackState, write_json_atomic
from opsdrill.targets import first_data, mlflow_service, ray_service, redis_service
from opsdrill.targets.base import (
    Endpoints,
    ExecResult,
    MemoryUsage,
    ProxyHops,
    ProxyLink,
    Service,
    ServiceFiles,
    Target,
    cuda_device_present,
)
from opsdrill.targets.local.files import LocalFiles
from opsdrill.targets.local.parts import DataFsInPlace, ProxyInPlace
from opsdrill.targets.postgres import APP_ROLE, Cluster, find_bindir, run_user
from opsdrill.targets.process_service import ProcessService, ProcessSpec
from opsdrill.targets.worker_cgroup import WorkerCgroup

__all__ = ["DataFilesystem", "LocalTarget", "StackOptions", "parse_size"]

Say = Callable[[str], None]

#: service -> Debian binary; the monitoring services are optional.
MONITORING_BINARIES = {
    "node_exporter": "prometheus-node-exporter",
    "postgres_exporter": "prometheus-postgres-exporter",
    "alertmanager": "prometheus-alertmanager",
    "prometheus": "prometheus",
}
CORE = ("db", "api")
#: start order; stop order is the reverse. `proxy` exists only with the proxy opt-in.
ORDER = ("db", "proxy", "redis", "ray_head", "ray_worker", "api", "mlflow", "node_exporter",
         "cgroup_exporter", "postgres_exporter", "alert_sink", "alertmanager",
         "prometheus")  # fmt: skip
#: services that may need two minutes to answer on a loaded 2-core machine (imports, migrations)
SLOW_STARTERS = ("api", "mlflow", *ray_service.RAY_SERVICES)
#: services whose process tree needs more than ProcessService knows
SERVICE_CLASSES: dict[str, type[ProcessService]] = {"mlflow": mlflow_service.MlflowService}
OPTIONS_FILE = "options.json"
PG_DIR = "pg"  # the cluster's root under the state directory (data/, socket/)
#: Toxiproxy proxy name -> the service it fronts
PROXIES = {"postgres": "db", "api": "api"}
#: the embedded stack evaluates production rules 60x faster: 2m -> 2s.
RULE_TIME_FACTOR = 1 / 60


@dataclass
class StackOptions:
    """The stack's opt-ins, fixed at `up` and read back by every later LocalTarget."""

    data_fs_size: str | None = None  # e.g. "64m": NF_HOME on a loop-mounted ext4 image
    proxy: bool = False  # Toxiproxy between app and PostgreSQL, and in front of the API
    worker_cgroup: str | None = None  # memory cgroup directory the training workers join
    monitoring: bool = True  # Prometheus & co. where installed (off: alert detectors skip)
    redis: bool = True  # Redis as the forecast cache where installed (redis_service)
    mlflow: bool = True  # the MLflow tracking server where installed (mlflow_service)

    @classmethod
    def load(cls, state_dir: Path) -> StackOptions | None:
        path = state_dir / OPTIONS_FILE
        if not path.exists():
            return None
        return cls(**json.loads(path.read_text()))

    def save(self, state_dir: Path) -> None:
        state_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(state_dir / OPTIONS_FILE, asdict(self))


def parse_size(text: str) -> int:
    """'64m', '1g', '65536k' or bytes -> bytes; at least 16 MiB (ext4 needs room for itself)."""
    match = re.fullmatch(r"\s*(\d+)\s*([kmgKMG]?)[iI]?[bB]?\s*", text)
    if not match:
        raise UsageError(f"data filesystem size {text!r} is not a size; use e.g. 64m or 1g")
    size = int(match[1]) * 1024 ** " kmg".index(match[2].lower() or " ")
    if size < 16 * 1024**2:
        raise UsageError(f"data filesystem size {text!r} is below 16m; ext4 needs more than that")
    return size


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=False)


class DataFilesystem:
    """NF_HOME on a size-limited ext4 image, loop-mounted: a disk that can really fill up.

    ext4 rather than tmpfs because the contents survive `down` (models stay trained) and
    node_exporter reports it like any disk, so HighDiskUsage fires for real (it ignores tmpfs).
    Reserved blocks are 0 %: the app runs as root here and would otherwise write into them.
    """

    def __init__(self, image: Path, mountpoint: Path, size: str) -> None:
        self.image, self.mountpoint, self.size = image, mountpoint, size

    @staticmethod
    def supported() -> str | None:
        """None when this machine can loop-mount ext4, else why not."""
        if os.geteuid() != 0:
            return "a loop mount needs root"
        missing = [b for b in ("mkfs.ext4", "mount", "umount") if shutil.which(b) is None]
        if missing:
            return f"missing {', '.join(missing)} (apt-get install e2fsprogs mount)"
        return None

    def mounted(self) -> bool:
        """True when our image is what is mounted on the mount point."""
        if not os.path.ismount(self.mountpoint):
            return False
        found = _run(["findmnt", "-n", "-o", "SOURCE", "--mountpoint", str(self.mountpoint)])
        loop = found.stdout.strip()
        back = _run(["losetup", "-n", "-O", "BACK-FILE", loop]).stdout.strip() if loop else ""
        return not back or Path(back.split(" (")[0]) == self.image

    def mount(self, say: Say) -> None:
        """Create the image once, move an existing home onto it, mount it on home."""
        if os.path.ismount(self.mountpoint):
            if not self.mounted():
                raise ServiceError(f"{self.mountpoint} is a mount point of something else; "
                                   f"unmount it before 'opsdrill up'")  # fmt: skip
            say(f"{'data fs':<18} {self.mountpoint} still mounted from an earlier run; reused")
            return
        if not self.image.exists():
            self._create()
        if self.mountpoint.exists() and any(self.mountpoint.iterdir()):
            self._move_existing_home(say)
        self.mountpoint.mkdir(parents=True, exist_ok=True)
        self._mount_at(self.mountpoint)
        say(f"{'data fs':<18} {self.size} ext4 image mounted on {self.mountpoint}")

    def _create(self) -> None:
        self.image.parent.mkdir(parents=True, exist_ok=True)
        with open(self.image, "wb") as fh:
            fh.truncate(parse_size(self.size))
        done = _run(["mkfs.ext4", "-q", "-F", "-m", "0", "-L", "opsdrill-data", str(self.image)])
        if done.returncode != 0:
            self.image.unlink(missing_ok=True)
            raise ServiceError(f"mkfs.ext4 on {self.image} failed: {done.stderr.strip()}")

    def _mount_at(self, where: Path) -> None:
        done = _run(["mount", "-o", "loop", str(self.image), str(where)])
        if done.returncode != 0:
            raise ServiceError(
                f"cannot loop-mount {self.image} on {where}: {done.stderr.strip()}; "
                "is /dev/loop-control available?"
            )
        where.chmod(0o755)

    def _move_existing_home(self, say: Say) -> None:
        """A stack created without the opt-in keeps its models: copy them onto the image."""
        staging = self.image.with_suffix(".mnt")
        staging.mkdir(exist_ok=True)
        self._mount_at(staging)
        try:
            shutil.copytree(self.mountpoint, staging, symlinks=True, dirs_exist_ok=True)
        finally:
            _run(["umount", str(staging)])
            staging.rmdir()
        shutil.rmtree(self.mountpoint)
        say(f"{'data fs':<18} existing {self.mountpoint} moved onto the image")

    def copy_out(self, destination: Path) -> None:
        """Copy the image's contents into `destination` (unmounted first): the way back for
        a home a drill moved onto the image. Copied beside it, then swapped in."""
        staging = self.image.with_suffix(".mnt")
        staging.mkdir(exist_ok=True)
        self._mount_at(staging)
        fresh = destination.with_name(destination.name + ".from-image")
        shutil.rmtree(fresh, ignore_errors=True)
        try:
            skip = shutil.ignore_patterns("lost+found")
            shutil.copytree(staging, fresh, symlinks=True, ignore=skip)
        finally:
            _run(["umount", str(staging)])
            staging.rmdir()
        fresh.chmod(0o755)
        shutil.rmtree(destination, ignore_errors=True)
        fresh.rename(destination)

    def unmount(self, say: Say, *, lazy: bool = True) -> None:
        """Unmount; lazily if something still holds a file open there (it is said so)."""
        if not os.path.ismount(self.mountpoint):
            return
        done = _run(["umount", str(self.mountpoint)])
        deadline = time.monotonic() + 15.0
        while done.returncode != 0 and not lazy and time.monotonic() < deadline:
            time.sleep(0.2)  # a stopped app's last children are still leaving
            done = _run(["umount", str(self.mountpoint)])
        if done.returncode != 0 and not lazy:
            raise ServiceError(
                f"cannot unmount {self.mountpoint}: {done.stderr.strip()}; "
                f"find what holds it with 'fuser -vm {self.mountpoint}'"
            )
        if done.returncode != 0:
            _run(["umount", "-l", str(self.mountpoint)])
            say(f"{'data fs':<18} busy ({done.stderr.strip()}); detached lazily")


class LocalTarget(Target):
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
        self.options = self._resolve_options(data_fs_size, proxy, worker_cgroup, monitoring)
        saved = StackOptions.load(self.state_dir)
        self.options.redis = redis_service.resolve_option(redis, saved.redis if saved else None)
        self.options.mlflow = mlflow_service.resolve_option(mlflow, saved.mlflow if saved else None)
        self.monitoring = self.options.monitoring

    def _resolve_options(
        self,
        data_fs_size: str | None,
        proxy: bool | None,
        worker_cgroup: bool | None,
        monitoring: bool | None,
    ) -> StackOptions:
        saved = StackOptions.load(self.state_dir)
        if data_fs_size is None:
            data_fs_size = os.environ.get("OPSDRILL_DATA_FS_SIZE") or None
        if data_fs_size is None and saved is not None:
            data_fs_size = saved.data_fs_size
        if data_fs_size is not None:
            parse_size(data_fs_size)
        if proxy is None and os.environ.get("OPSDRILL_PROXY"):
            proxy = os.environ["OPSDRILL_PROXY"] not in ("0", "false", "no")
        if proxy is None:
            proxy = saved.proxy if saved is not None else False
        if monitoring is None and os.environ.get("OPSDRILL_MONITORING"):
            monitoring = os.environ["OPSDRILL_MONITORING"] not in ("0", "false", "no")
        if monitoring is None:
            monitoring = saved.monitoring if saved is not None else True
        if saved is not None and worker_cgroup is None:
            cgroup = saved.worker_cgroup
        elif worker_cgroup is False:
            cgroup = None
        else:
            found = WorkerCgroup.for_state_dir(self.state_dir)
            cgroup = str(found.path) if found is not None else None
        return StackOptions(
            data_fs_size=data_fs_size, proxy=proxy, worker_cgroup=cgroup, monitoring=monitoring
        )

    @property
    def data_fs(self) -> DataFilesystem | None:
        """The size-limited filesystem under NF_HOME, when the stack has one."""
        if self.options.data_fs_size is None:
            return None
        return DataFilesystem(self.state_dir / "data-fs.img", self.home, self.options.data_fs_size)

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
        return [
            {"name": name, "listen": f"127.0.0.1:{self._port(f'proxy_{name}')}",
             "upstream": f"127.0.0.1:{self._port(service)}", "enabled": True}
            for name, service in PROXIES.items()
        ]  # fmt: skip

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
        from opsdrill.targets import pid_file

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
        names = {"app_db": "postgres", "client_api": "api"}
        if link not in names:
            raise UsageError(f"unknown link {link!r}: use one of {', '.join(names)}")
        return ProxyLink(toxiproxy_url=url, proxy=names[link], link=link)

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
            self._populate_external_proxy()
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
        image = self.state_dir / "data-fs.img"
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

    # -- persistence -------------------------------------------------------------------
    @contextlib.contextmanager
    def _locked(self) -> Iterator[StackState]:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with open(self.state_dir / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            state = StackState.load(self.state_dir)
            yield state
            state.save(self.state_dir)

    def _state(self) -> StackState:
        return StackState.load(self.state_dir)

    def get_record(self, name: str) -> ServiceRecord | None:
        return self._state().services.get(name)

    def put_record(self, name: str, record: ServiceRecord | None) -> None:
        with self._locked() as state:
            if record is None:
                state.services.pop(name, None)
            else:
                state.services[name] = record

    def _port(self, name: str) -> int:
        """The service's port: chosen once, kept while free, re-chosen if taken by a stranger."""
        state = self._state()
        if name in state.ports:
            return state.ports[name]
        with self._locked() as state:
            taken = set(state.ports.values())
            port = ports.free_port()
            while port in taken:
                port = ports.free_port()
            state.ports[name] = port
            return port

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
        def url(name: str) -> str | None:
            return f"http://127.0.0.1:{self._port(name)}" if name in self.services else None

        cluster = self.cluster
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
                "db": self._db_spec,
                "proxy": self._proxy_spec,
                "redis": lambda: redis_service.spec(self._port("redis"), self.state_dir / "redis"),
                "api": self._api_spec,
                "mlflow": self._mlflow_spec,
                "node_exporter": self._node_exporter_spec,
                "postgres_exporter": self._postgres_exporter_spec,
                "alert_sink": self._alert_sink_spec,
                "cgroup_exporter": self._cgroup_exporter_spec,
                "alertmanager": self._alertmanager_spec,
                "prometheus": self._prometheus_spec,
                "ray_head": lambda: ray_service.head_spec(self._port, self.state_dir),
                "ray_worker": lambda: ray_service.worker_spec(self._port, self.state_dir),
            }
            names = [n for n in ORDER if n in CORE or self._optional_available(n)]
            self._services = {
                n: SERVICE_CLASSES.get(n, ProcessService)(
                    n, self, builders[n], self.state_dir / "logs" / f"{n}.log"
                )
                for n in names
            }
        return self._services

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
        return self.monitoring and shutil.which(MONITORING_BINARIES[name]) is not None

    def absent_services(self) -> list[str]:
        return self.missing_monitoring()

    def missing_monitoring(self) -> list[str]:
        """Monitoring services skipped because their package is not installed."""
        if not self.monitoring:
            return []
        return [n for n, b in MONITORING_BINARIES.items() if shutil.which(b) is None]

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
        parts = urlsplit(dsn)
        netloc = parts.netloc.rsplit(":", 1)[0] + f":{self._port('proxy_postgres')}"
        return parts._replace(netloc=netloc).geturl()

    # -- service specs -----------------------------------------------------------------
    def _db_spec(self) -> ProcessSpec:
        cluster = self.cluster
        return ProcessSpec(
            argv=cluster.server_argv(),
            user=cluster.user,
            ready=lambda: sql_ok(cluster.admin_conninfo()),
            url=f"postgresql://127.0.0.1:{cluster.port}/ts_forecast_system",
            port=cluster.port,
            stop_signal=signal.SIGINT,  # "fast" shutdown: SIGTERM would wait for every client
            before_start=lambda: cluster.remove_stale_pidfile(self._dead_pid("db")),
            retry_on=("shared memory block is still in use", "lock file", "could not bind"),
        )

    def _api_spec(self) -> ProcessSpec:
        port = self._port("api")
        url = f"http://127.0.0.1:{port}"
        return ProcessSpec(
            argv=[sys.executable, "-m", "nf_auto_runner.app.main",
                  "--host", "127.0.0.1", "--port", str(port)],
            env=self.app_env(),
            cwd=self.home,
            ready=lambda: http_ok(f"{url}/health"),
            url=url,
            port=port,
            before_start=lambda: self.home.mkdir(parents=True, exist_ok=True),
        )  # fmt: skip

    def _mlflow_spec(self) -> ProcessSpec:
        cluster = self.cluster
        return mlflow_service.spec(self._port("mlflow"), self.home,
                                   cluster.app_dsn(self.secrets.db_password),
                                   cluster.admin_conninfo("postgres"), APP_ROLE)  # fmt: skip

    def _proxy_spec(self) -> ProcessSpec:
        """toxiproxy-server if installed, else the embedded one; proxies come from a file."""
        port = self._port("proxy")
        config = self.state_dir / "proxy" / "proxies.json"
        binary = shutil.which("toxiproxy-server")
        if binary:
            argv = [binary, "-host", "127.0.0.1", "-port", str(port), "-config", str(config)]
        else:
            argv = [sys.executable, "-m", "opsdrill.toxiproxy", "--host", "127.0.0.1",
                    "--port", str(port), "--config", str(config)]  # fmt: skip

        def write_config() -> None:
            config.parent.mkdir(parents=True, exist_ok=True)
            config.write_text(json.dumps(self.proxies_config(), indent=2) + "\n")

        return ProcessSpec(
            argv=argv,
            ready=lambda: http_ok(f"http://127.0.0.1:{port}/proxies"),
            url=f"http://127.0.0.1:{port}",
            port=port,
            before_start=write_config,
        )

    def _populate_external_proxy(self) -> None:
        """With OPSDRILL_TOXIPROXY_URL, create (or replace) our proxies on that server."""
        import httpx

        url = self.toxiproxy_url
        resp = httpx.post(f"{url}/populate", json=self.proxies_config(), timeout=5)
        if resp.status_code >= 300:
            raise ServiceError(f"Toxiproxy at {url} refused our proxies: {resp.text.strip()}")

    def _exporter_ready(self, port: int) -> bool:
        return http_ok(f"http://127.0.0.1:{port}/metrics")

    def _node_exporter_spec(self) -> ProcessSpec:
        port = self._port("node_exporter")
        return ProcessSpec(
            argv=[MONITORING_BINARIES["node_exporter"],
                  f"--web.listen-address=127.0.0.1:{port}",
                  "--collector.disable-defaults", "--collector.meminfo",
                  "--collector.filesystem", "--collector.cpu", "--collector.loadavg"],
            ready=lambda: self._exporter_ready(port),
            url=f"http://127.0.0.1:{port}",
            port=port,
        )  # fmt: skip

    def _postgres_exporter_spec(self) -> ProcessSpec:
        port = self._port("postgres_exporter")
        env = dict(os.environ, DATA_SOURCE_NAME=self.endpoints.dsn + "?sslmode=disable")
        return ProcessSpec(
            argv=[MONITORING_BINARIES["postgres_exporter"],
                  f"--web.listen-address=127.0.0.1:{port}"],
            env=env,
            ready=lambda: self._exporter_ready(port),
            url=f"http://127.0.0.1:{port}",
            port=port,
        )  # fmt: skip

    def _alert_sink_spec(self) -> ProcessSpec:
        """The webhook receiver Alertmanager delivers to: a drill sees each page arrive."""
        port = self._port("alert_sink")
        record = self.state_dir / "monitoring" / "alert_sink" / "received.jsonl"
        return ProcessSpec(
            argv=[sys.executable, "-m", "opsdrill.alert_sink", "--host", "127.0.0.1",
                  "--port", str(port), "--file", str(record)],
            ready=lambda: http_ok(f"http://127.0.0.1:{port}/-/ready"),
            url=f"http://127.0.0.1:{port}",
            port=port,
        )  # fmt: skip

    def _cgroup_exporter_spec(self) -> ProcessSpec:
        """The workers' memory cgroup as a node for HighMemoryUsage (opsdrill.cgroup_exporter)."""
        port = self._port("cgroup_exporter")
        return ProcessSpec(
            argv=[sys.executable, "-m", "opsdrill.cgroup_exporter", "--cgroup",
                  str(self.options.worker_cgroup), "--port", str(port)],
            ready=lambda: self._exporter_ready(port),
            url=f"http://127.0.0.1:{port}",
            port=port,
        )  # fmt: skip

    def _alertmanager_spec(self) -> ProcessSpec:
        from opsdrill.targets import prometheus_files

        port = self._port("alertmanager")
        root = self.state_dir / "monitoring" / "alertmanager"
        sink = f"http://127.0.0.1:{self._port('alert_sink')}/alerts"

        def write_config() -> None:
            root.mkdir(parents=True, exist_ok=True)
            (root / "alertmanager.yml").write_text(
                prometheus_files.render_alertmanager_config(sink)
            )

        return ProcessSpec(
            argv=[MONITORING_BINARIES["alertmanager"],
                  f"--config.file={root / 'alertmanager.yml'}",
                  f"--storage.path={root / 'data'}",
                  f"--web.listen-address=127.0.0.1:{port}",
                  "--cluster.listen-address="],
            ready=lambda: http_ok(f"http://127.0.0.1:{port}/-/ready"),
            url=f"http://127.0.0.1:{port}",
            port=port,
            before_start=write_config,
        )  # fmt: skip

    def _prometheus_spec(self) -> ProcessSpec:
        from opsdrill.targets import prometheus_files

        port = self._port("prometheus")
        root = self.state_dir / "monitoring" / "prometheus"

        def url_of(name: str) -> str | None:
            return f"http://127.0.0.1:{self._port(name)}" if name in self.services else None

        def write_config() -> None:
            (root / "rules").mkdir(parents=True, exist_ok=True)
            changes = []
            for name in prometheus_files.RULE_FILES:
                rules, shortened = prometheus_files.shorten_rules(
                    prometheus_files.rules_text(name), RULE_TIME_FACTOR
                )
                (root / "rules" / name).write_text(rules)
                changes += [{"file": name, **vars(s)} for s in shortened]
            (root / "shortened.json").write_text(json.dumps(changes, indent=2))
            (root / "prometheus.yml").write_text(
                prometheus_files.render_prometheus_config(
                    app_url=f"http://127.0.0.1:{self._port('api')}",
                    postgres_exporter_url=url_of("postgres_exporter"),
                    node_exporter_url=url_of("node_exporter"),
                    alertmanager_url=url_of("alertmanager"),
                    rules_path=root / "rules" / "*.yml",
                    worker_node_url=url_of("cgroup_exporter"),
                )
            )

        return ProcessSpec(
            argv=[MONITORING_BINARIES["prometheus"],
                  f"--config.file={root / 'prometheus.yml'}",
                  f"--storage.tsdb.path={root / 'data'}",
                  f"--web.listen-address=127.0.0.1:{port}",
                  "--web.enable-lifecycle"],
            ready=lambda: http_ok(f"http://127.0.0.1:{port}/-/ready"),
            url=f"http://127.0.0.1:{port}",
            port=port,
            before_start=write_config,
        )  # fmt: skip

    # -- whole-stack operations ------------------------------------------------------------
    def exists(self) -> bool:
        """True once the stack's database cluster was created. Not the state file: asking for
        an endpoint (the capability check at collection does) records ports in it first.
        Read from the path alone: `self.cluster` would allocate a port, creating the dir."""
        return (self.state_dir / PG_DIR / "data" / "PG_VERSION").exists()

    def is_up(self) -> bool:
        return all(s.healthy() for s in self.services.values())

    def _dead_pid(self, name: str) -> int | None:
        """The recorded pid of a service we started that is gone (by start time), if any."""
        rec = self.get_record(name)
        return rec.pid if rec is not None and rec.pid > 0 and not _alive(rec) else None

    def clean_stale(self, say: Say = print) -> list[str]:
        """Forget services whose recorded process is gone (a killed run); return their names."""
        stale, stale_pids = [], {}
        with self._locked() as state:
            for name, rec in list(state.services.items()):
                if not _alive(rec):
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
            packages = " ".join(MONITORING_BINARIES[m] for m in missing)
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
            service.start(timeout=120.0 if name in SLOW_STARTERS else 60.0)
            say(f"{name:<18} started in {time.monotonic() - t0:5.1f} s  pid {service.pid()}  "
                f"{service.url or ''}")  # fmt: skip
            if name == "db":
                self._bootstrap_db()
                if self.options.proxy and "proxy" not in self.services:
                    self._populate_external_proxy()
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
        import psycopg

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


def _alive(rec: ServiceRecord) -> bool:
    from opsdrill.processes import ProcessRef

    return rec.pid > 0 and ProcessRef(rec.pid, rec.ticks).alive()
