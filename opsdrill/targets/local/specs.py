"""The stack's services: which there are, in what order they start, and how each one is run.

A spec is built afresh from ports and paths at each start (ProcessService asks for it), so a
port re-chosen since is current; these functions take those values (the port function where
a service needs another's port), never the target, so what each needs is in its signature.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from opsdrill.monitoring import prometheus_files
from opsdrill.probes.http import http_ok
from opsdrill.probes.sql import sql_ok
from opsdrill.targets.local import mlflow_service, ray_service
from opsdrill.targets.local.process_service import ProcessService, ProcessSpec
from opsdrill.targets.postgres import APP_ROLE, Cluster

__all__ = [
    "CORE",
    "MONITORING_BINARIES",
    "ORDER",
    "SERVICE_CLASSES",
    "SLOW_STARTERS",
    "alert_sink_spec",
    "alertmanager_spec",
    "api_spec",
    "cgroup_exporter_spec",
    "db_spec",
    "http_spec",
    "mlflow_spec",
    "node_exporter_spec",
    "postgres_exporter_spec",
    "prometheus_spec",
]

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
#: a service's port in the stack, chosen once and kept (`LocalTarget._port`)
Ports = Callable[[str], int]
#: the embedded stack evaluates production rules 60x faster: 2m -> 2s.
RULE_TIME_FACTOR = 1 / 60


def http_spec(
    argv: Sequence[str],
    port: int,
    ready_path: str,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    before_start: Callable[[], None] | None = None,
) -> ProcessSpec:
    """A service answering HTTP on 127.0.0.1:`port`: ready once `ready_path` answers 2xx."""
    url = f"http://127.0.0.1:{port}"
    return ProcessSpec(
        argv=argv, ready=lambda: http_ok(url + ready_path), url=url, port=port, env=env, cwd=cwd,
        before_start=before_start,
    )  # fmt: skip


def db_spec(cluster: Cluster, dead_pid: Callable[[str], int | None]) -> ProcessSpec:
    """PostgreSQL; a pid file left by a killed server is removed before it starts."""
    return ProcessSpec(
        argv=cluster.server_argv(),
        user=cluster.user,
        ready=lambda: sql_ok(cluster.admin_conninfo()),
        url=f"postgresql://127.0.0.1:{cluster.port}/ts_forecast_system",
        port=cluster.port,
        stop_signal=signal.SIGINT,  # "fast" shutdown: SIGTERM would wait for every client
        before_start=lambda: cluster.remove_stale_pidfile(dead_pid("db")),
        retry_on=("shared memory block is still in use", "lock file", "could not bind"),
    )


def api_spec(port: int, home: Path, env: dict[str, str]) -> ProcessSpec:
    """The app, in its home, with the environment `LocalTarget.app_env` gives it."""
    return http_spec(
        [sys.executable, "-m", "nf_auto_runner.app.main",
         "--host", "127.0.0.1", "--port", str(port)],
        port, "/health", env=env, cwd=home,
        before_start=lambda: home.mkdir(parents=True, exist_ok=True),
    )  # fmt: skip


def mlflow_spec(cluster: Cluster, port: int, home: Path, db_password: str) -> ProcessSpec:
    """MLflow's tracking server, its store a database of its own in the stack's cluster."""
    return mlflow_service.spec(port, home, cluster.app_dsn(db_password),
                               cluster.admin_conninfo("postgres"), APP_ROLE)  # fmt: skip


def node_exporter_spec(port: int) -> ProcessSpec:
    """The node exporter, with only the collectors the alert rules read."""
    return http_spec(
        [MONITORING_BINARIES["node_exporter"], f"--web.listen-address=127.0.0.1:{port}",
         "--collector.disable-defaults", "--collector.meminfo", "--collector.filesystem",
         "--collector.cpu", "--collector.loadavg"],
        port, "/metrics",
    )  # fmt: skip


def postgres_exporter_spec(port: int, dsn: str) -> ProcessSpec:
    """The postgres exporter on the app's own database link."""
    env = dict(os.environ, DATA_SOURCE_NAME=dsn + "?sslmode=disable")
    return http_spec(
        [MONITORING_BINARIES["postgres_exporter"], f"--web.listen-address=127.0.0.1:{port}"],
        port, "/metrics", env=env,
    )  # fmt: skip


def alert_sink_spec(port: int, state_dir: Path) -> ProcessSpec:
    """The webhook receiver Alertmanager delivers to: a drill sees each page arrive."""
    record = state_dir / "monitoring" / "alert_sink" / "received.jsonl"
    return http_spec(
        [sys.executable, "-m", "opsdrill.monitoring.alert_sink", "--host", "127.0.0.1",
         "--port", str(port), "--file", str(record)],
        port, "/-/ready",
    )  # fmt: skip


def cgroup_exporter_spec(port: int, cgroup: str | None) -> ProcessSpec:
    """The workers' memory cgroup as a node for HighMemoryUsage (`monitoring.cgroup_exporter`)."""
    return http_spec(
        [sys.executable, "-m", "opsdrill.monitoring.cgroup_exporter", "--cgroup", str(cgroup),
         "--port", str(port)],
        port, "/metrics",
    )  # fmt: skip


def alertmanager_spec(ports: Ports, state_dir: Path) -> ProcessSpec:
    """Alertmanager, routing every alert to the alert sink."""
    port = ports("alertmanager")
    root = state_dir / "monitoring" / "alertmanager"
    sink = f"http://127.0.0.1:{ports('alert_sink')}/alerts"

    def write_config() -> None:
        root.mkdir(parents=True, exist_ok=True)
        (root / "alertmanager.yml").write_text(prometheus_files.render_alertmanager_config(sink))

    return _prometheus_tool_spec(
        "alertmanager", port, root, "--storage.path", "--cluster.listen-address=", write_config
    )


def prometheus_spec(
    ports: Ports, state_dir: Path, url_of: Callable[[str], str | None]
) -> ProcessSpec:
    """Prometheus with the production rules, shortened (RULE_TIME_FACTOR), scraping the
    services `url_of` finds in the stack; what was shortened is kept in shortened.json."""
    port = ports("prometheus")
    root = state_dir / "monitoring" / "prometheus"

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
                app_url=f"http://127.0.0.1:{ports('api')}",
                postgres_exporter_url=url_of("postgres_exporter"),
                node_exporter_url=url_of("node_exporter"),
                alertmanager_url=url_of("alertmanager"),
                rules_path=root / "rules" / "*.yml",
                worker_node_url=url_of("cgroup_exporter"),
            )
        )

    return _prometheus_tool_spec(
        "prometheus", port, root, "--storage.tsdb.path", "--web.enable-lifecycle", write_config
    )


def _prometheus_tool_spec(
    name: str, port: int, root: Path, storage_flag: str, last_flag: str,
    write_config: Callable[[], None],
) -> ProcessSpec:  # fmt: skip
    """Prometheus and Alertmanager take their config, data and address alike (NAME.yml and
    data/ under `root`) and both answer /-/ready; they differ in one flag each."""
    return http_spec(
        [MONITORING_BINARIES[name], f"--config.file={root / f'{name}.yml'}",
         f"{storage_flag}={root / 'data'}", f"--web.listen-address=127.0.0.1:{port}", last_flag],
        port, "/-/ready", before_start=write_config,
    )  # fmt: skip
