"""The embedded target: the whole reference stack as local processes in a state directory.

STATE_DIR/
  state.json, secrets.json   ports, pids (with start times), generated secrets
  pg/data, pg/socket         the PostgreSQL cluster (owned by `postgres` when run as root)
  home/                      NF_HOME of the app: conf/, logs/app/, models/, backups/
  monitoring/                Prometheus and Alertmanager configs and data
  logs/<service>.log         each service's stdout and stderr
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from opsdrill import ports
from opsdrill.errors import ServiceError, StartTimeout
from opsdrill.probes.http import http_ok
from opsdrill.probes.sql import sql_ok
from opsdrill.state import STATE_FILE, Secrets, ServiceRecord, StackState
from opsdrill.targets.base import Endpoints, Service, Target
from opsdrill.targets.postgres import Cluster, find_bindir, run_user
from opsdrill.targets.process_service import ProcessService, ProcessSpec

__all__ = ["LocalTarget", "ServiceStatus"]

Say = Callable[[str], None]

#: service -> Debian binary; the monitoring services are optional.
MONITORING_BINARIES = {
    "node_exporter": "prometheus-node-exporter",
    "postgres_exporter": "prometheus-postgres-exporter",
    "alertmanager": "prometheus-alertmanager",
    "prometheus": "prometheus",
}
CORE = ("db", "api")
#: start order; stop order is the reverse.
ORDER = ("db", "api", "node_exporter", "postgres_exporter", "alertmanager", "prometheus")
#: the embedded stack evaluates production rules 60x faster: 2m -> 2s.
RULE_TIME_FACTOR = 1 / 60


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    running: bool
    healthy: bool
    pid: int | None
    url: str | None


class LocalTarget(Target):
    """The reference stack on this machine. Never production."""

    name = "local"
    production = False

    def __init__(self, state_dir: Path, *, monitoring: bool = True) -> None:
        self.state_dir = state_dir.absolute()
        self.monitoring = monitoring
        self._services: dict[str, Service] | None = None

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
        return Cluster(self.state_dir / "pg", self._port("db"), find_bindir(), run_user())

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
                "api": self._api_spec,
                "node_exporter": self._node_exporter_spec,
                "postgres_exporter": self._postgres_exporter_spec,
                "alertmanager": self._alertmanager_spec,
                "prometheus": self._prometheus_spec,
            }
            names = [n for n in ORDER if n in CORE or self._monitoring_available(n)]
            self._services = {
                n: ProcessService(n, self, builders[n], self.state_dir / "logs" / f"{n}.log")
                for n in names
            }
        return self._services

    def _monitoring_available(self, name: str) -> bool:
        return self.monitoring and shutil.which(MONITORING_BINARIES[name]) is not None

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
            DATABASE_URL=self.endpoints.dsn,
            NF_API_KEY=self.secrets.api_key,
            MAX_PARALLEL_RUNS=env.get("MAX_PARALLEL_RUNS", "2"),
            PYTHONUNBUFFERED="1",
        )
        return env

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
            before_start=cluster.remove_stale_pidfile,
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

    def _alertmanager_spec(self) -> ProcessSpec:
        from opsdrill.targets import prometheus_files

        port = self._port("alertmanager")
        root = self.state_dir / "monitoring" / "alertmanager"

        def write_config() -> None:
            root.mkdir(parents=True, exist_ok=True)
            (root / "alertmanager.yml").write_text(
                prometheus_files.render_alertmanager_config("http://127.0.0.1:9/opsdrill-null")
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
            root.mkdir(parents=True, exist_ok=True)
            rules, shortened = prometheus_files.shorten_rules(
                prometheus_files.production_rules_text(), RULE_TIME_FACTOR
            )
            (root / "alerts.yml").write_text(rules)
            (root / "shortened.json").write_text(
                json.dumps(
                    [s._asdict() if hasattr(s, "_asdict") else vars(s) for s in shortened], indent=2
                )
            )
            (root / "prometheus.yml").write_text(
                prometheus_files.render_prometheus_config(
                    app_url=f"http://127.0.0.1:{self._port('api')}",
                    postgres_exporter_url=url_of("postgres_exporter"),
                    node_exporter_url=url_of("node_exporter"),
                    alertmanager_url=url_of("alertmanager"),
                    rules_path=root / "alerts.yml",
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
    def status(self) -> list[ServiceStatus]:
        """Each service now; read-only: a state directory that does not exist stays so."""
        if not (self.state_dir / STATE_FILE).exists():
            return [ServiceStatus(n, False, False, None, None) for n in self.services]
        return [
            ServiceStatus(n, s.is_running(), s.healthy(), s.pid(), s.url)
            for n, s in self.services.items()
        ]

    def is_up(self) -> bool:
        return all(s.healthy() for s in self.services.values())

    def clean_stale(self, say: Say = print) -> list[str]:
        """Forget services whose recorded process is gone (a killed run); return their names."""
        stale = []
        with self._locked() as state:
            for name, rec in list(state.services.items()):
                if not _alive(rec):
                    stale.append(name)
                    del state.services[name]
        if stale:
            say(f"stale state from an earlier run: {', '.join(stale)} no longer running; cleaned")
        if "db" in stale or self.get_record("db") is None:
            self.cluster.remove_stale_pidfile()
        return stale

    def up(self, *, train: bool = True, say: Say = print) -> None:
        """Start every service not already running; first time: create, seed and train."""
        self.clean_stale(say)
        if missing := self.missing_monitoring():
            packages = " ".join(MONITORING_BINARIES[m] for m in missing)
            say(f"monitoring not installed, skipped: {', '.join(missing)} "
                f"(apt-get install {packages})")  # fmt: skip
        cluster = self.cluster
        cluster.init()
        for name, service in self.services.items():
            if service.is_running() and service.healthy():
                say(f"{name:<18} already running   pid {service.pid()}")
                continue
            t0 = time.monotonic()
            service.start(timeout=120.0 if name == "api" else 60.0)
            say(f"{name:<18} started in {time.monotonic() - t0:5.1f} s  pid {service.pid()}  "
                f"{service.url or ''}")  # fmt: skip
            if name == "db":
                self._bootstrap_db()
        if not self._state().initialized:
            self._first_data(train=train, say=say)

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
        from opsdrill.targets import first_data

        t0 = time.monotonic()
        first_data.seed(self)
        say(f"{'seed':<18} series loaded in {time.monotonic() - t0:4.1f} s")
        if train:
            t0 = time.monotonic()
            run = first_data.train_first_model(self)
            say(f"{'first model':<18} run {run['run_id']} {run['model_name']} "
                f"completed in {time.monotonic() - t0:4.1f} s")  # fmt: skip
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

    def destroy(self) -> None:
        """Stop everything and delete the state directory."""
        self.down(say=lambda _: None)
        if (self.state_dir / STATE_FILE).exists():
            shutil.rmtree(self.state_dir)

    def wait_healthy(self, timeout: float = 30.0) -> None:
        """Poll until every service answers its readiness probe."""
        deadline = time.monotonic() + timeout
        while not self.is_up():
            if time.monotonic() >= deadline:
                bad = [s.name for s in self.status() if not s.healthy]
                raise StartTimeout(f"services not healthy after {timeout:.0f} s: {', '.join(bad)}")
            time.sleep(0.1)


def _alive(rec: ServiceRecord) -> bool:
    from opsdrill.processes import ProcessRef

    return rec.pid > 0 and ProcessRef(rec.pid, rec.ticks).alive()
