"""The runbook's Grafana dashboard (§4.1.1) as code, with the §4.1.2 thresholds from opsdrill.

    python -m opsdrill.monitoring.grafana_dashboard > system/grafana/ts-forecast.json

Generated with grafana-foundation-sdk (Grafana's own typed builders), never hand-edited:
tests/test_grafana_dashboard.py fails while the committed file differs from what this module
gives, so a threshold changed in `opsdrill.runbook.thresholds` changes the dashboard too. The
four rows are the runbook's (System Overview, Application Metrics, Database Metrics,
Performance Metrics). No Grafana server runs here; checks/test_grafana_dashboard.py evaluates
every panel's PromQL against the stack's Prometheus instead (a blank panel is a finding).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass

from grafana_foundation_sdk.builders import dashboard as board
from grafana_foundation_sdk.builders import prometheus, stat, timeseries
from grafana_foundation_sdk.builders.common import GraphThresholdsStyleConfig
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model

from opsdrill.monitoring.prometheus_files import APP_JOB, NODE_JOB, POSTGRES_JOB
from opsdrill.runbook.thresholds import THRESHOLDS, Threshold

__all__ = ["DATASOURCE_UID", "PANELS", "ROWS", "PanelSpec", "build", "render", "steps"]

UID = "ts-forecast"
TITLE = "ts-forecast: forecasting stack (runbook 4.1.1)"
#: the Prometheus datasource the provisioning file defines (system/grafana/provisioning)
DATASOURCE_UID = "prometheus"
#: Threshold.unit -> Grafana unit
UNITS = {"%": "percent", "s": "s", "runs": "short", "connections": "short"}
#: opsdrill's levels as Grafana colours: normal, elevated, warning, critical
COLOURS = ("green", "yellow", "orange", "red")
PSEUDO_FS = 'fstype!~"tmpfs|ramfs|devtmpfs|overlay|squashfs|iso9660|nsfs|autofs|fuse\\\\..*"'
APP = f'job="{APP_JOB}"'
PREDICTION_PATHS = 'path=~"/predict|/forecast/\\\\{series_id\\\\}"'
_FS = f'{{job="{NODE_JOB}", {PSEUDO_FS}}}'
_DISK_USED = f"node_filesystem_size_bytes{_FS} - node_filesystem_free_bytes{_FS}"
#: df's Use%, used / (used + available), as the §4.1.2 check and the HighDiskUsage alert read
#: it: reserved blocks are neither (1 - avail / size counted them as used)
_DISK_USED_PERCENT = (
    f"100 * max by (instance, mountpoint) "
    f"(({_DISK_USED}) / ({_DISK_USED} + node_filesystem_avail_bytes{_FS}))"
)


@dataclass(frozen=True)
class PanelSpec:
    """One panel: its queries (legend, PromQL), unit, and the §4.1.2 row it is judged by."""

    title: str
    queries: tuple[tuple[str, str], ...]
    unit: str = "short"
    threshold: str | None = None  # a key of opsdrill.runbook.thresholds.THRESHOLDS
    kind: str = "timeseries"  # or "stat"
    #: forecasts must have been served within the query's window for it to have data
    needs_forecasts: bool = False
    description: str = ""


def _p95(matchers: str) -> str:
    return (
        "histogram_quantile(0.95, sum by (le) "
        f"(rate(http_request_duration_seconds_bucket{{{matchers}}}[5m])))"
    )


ROWS: dict[str, tuple[PanelSpec, ...]] = {
    "System Overview": (
        PanelSpec("Services up", (("{{job}} {{instance}}", "up"),), kind="stat",
                  description="1 per scraped target; 0 is a target Prometheus cannot reach"),
        PanelSpec("CPU usage", (("{{instance}}", "100 * (1 - avg by (instance) (rate("
                  f'node_cpu_seconds_total{{job="{NODE_JOB}", mode="idle"}}[1m])))'),),
                  unit="percent", threshold="cpu"),
        PanelSpec("Memory usage", (("{{instance}} {{node}}",
                  f'100 * (1 - node_memory_MemAvailable_bytes{{job="{NODE_JOB}"}} '
                  f'/ node_memory_MemTotal_bytes{{job="{NODE_JOB}"}})'),),
                  unit="percent", threshold="memory"),
        PanelSpec("Disk usage", (("{{instance}} {{mountpoint}}", _DISK_USED_PERCENT),),
                  unit="percent", threshold="disk"),
    ),
    "Application Metrics": (
        PanelSpec("Request rate", (("{{path}}",
                  f"sum by (path) (rate(http_requests_total{{{APP}}}[1m]))"),), unit="reqps"),
        PanelSpec("API error rate", (("5xx share",
                  f'100 * (sum(rate(http_requests_total{{{APP}, status=~"5.."}}[5m])) '
                  f"or vector(0)) / sum(rate(http_requests_total{{{APP}}}[5m]))"),),
                  unit="percent", threshold="error_rate"),
        PanelSpec("Active runs", (("running", f"ts_forecast_active_runs{{{APP}}}"),),
                  threshold="active_runs"),
        PanelSpec("Queued runs", (("scheduled", f"ts_forecast_queued_runs{{{APP}}}"),),
                  threshold="queued_runs"),
        PanelSpec("Requests in progress",
                  (("in progress", f"http_requests_in_progress{{{APP}}}"),)),
    ),
    "Database Metrics": (
        PanelSpec("DB connections", (("{{state}}",
                  f'sum by (state) (pg_stat_activity_count{{job="{POSTGRES_JOB}"}})'),
                  ("total", f'sum(pg_stat_activity_count{{job="{POSTGRES_JOB}"}})')),
                  threshold="db_connections",
                  description="PostgreSQL sessions by state (runbook 5.2.2: pool exhaustion "
                              "shows here as idle sessions piling up)"),
        PanelSpec("App connection pool", (
                  ("held", f"ts_forecast_db_pool_size{{{APP}}}"),
                  ("idle", f"ts_forecast_db_pool_available{{{APP}}}"),
                  ("waiting", f"ts_forecast_db_pool_waiting{{{APP}}}"),
                  ("max", f"ts_forecast_db_pool_max{{{APP}}}"))),
        PanelSpec("Database up", (("exporter sees PostgreSQL", f'pg_up{{job="{POSTGRES_JOB}"}}'),
                  ("app's last probe", f"ts_forecast_db_up{{{APP}}}")), kind="stat"),
        PanelSpec("Transactions per second", (("{{datname}}",
                  f'sum by (datname) (rate(pg_stat_database_xact_commit{{job="{POSTGRES_JOB}", '
                  'datname="ts_forecast_system"}[1m]))'),), unit="ops"),
    ),
    "Performance Metrics": (
        PanelSpec("API response time p95", (("all routes", _p95(APP)),), unit="s",
                  threshold="api_p95"),
        PanelSpec("Prediction latency p95", (("predict + forecast",
                  _p95(f"{APP}, {PREDICTION_PATHS}")),), unit="s", needs_forecasts=True,
                  description="the latency SLO's routes (runbook 2.3: p95 < 500 ms)"),
        PanelSpec("Forecast cache hit ratio", (("{{backend}}",
                  '100 * sum by (backend) (rate(ts_forecast_result_cache_lookups_total'
                  f'{{{APP}, outcome="hit"}}[5m])) / sum by (backend) (rate('
                  f"ts_forecast_result_cache_lookups_total{{{APP}}}[5m]))"),),
                  unit="percent", needs_forecasts=True,
                  description="redis: the shared cache; memory: the in-process fallback"),
        PanelSpec("Model runs per second", (("forecasts computed",
                  f"rate(ts_forecast_model_runs_total{{{APP}}}[1m])"),), unit="ops"),
        PanelSpec("Training runs finished (1 h)", (("{{status}}",
                  f"sum by (status) (increase(ts_forecast_runs_finished_total{{{APP}}}[1h]))"),)),
    ),
}  # fmt: skip
PANELS: tuple[PanelSpec, ...] = tuple(p for row in ROWS.values() for p in row)


def steps(threshold: Threshold) -> list[tuple[float | None, str]]:
    """opsdrill's levels as Grafana steps: normal, elevated from normal_below, warning above
    warning_above, critical above critical_above (Grafana colours from a value up)."""
    values = (None, threshold.normal_below, threshold.warning_above, threshold.critical_above)
    return [(v, c) for v, c in zip(values, COLOURS, strict=True)]


def _panel(spec: PanelSpec, panel_id: int) -> board.Panel:
    builder = (stat.Panel() if spec.kind == "stat" else timeseries.Panel()).title(spec.title)
    builder.id(panel_id).datasource(model.DataSourceRef(type_val="prometheus", uid=DATASOURCE_UID))
    builder.unit(spec.unit).span(6).height(8)
    if spec.description:
        builder.description(spec.description)
    for ref, (legend, expr) in zip("ABCDEFGH", spec.queries, strict=False):
        builder.with_target(prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(ref))
    if spec.threshold is not None:
        t = THRESHOLDS[spec.threshold]
        builder.unit(UNITS.get(t.unit, "short"))
        config = board.ThresholdsConfig().mode(model.ThresholdsMode.ABSOLUTE)
        builder.thresholds(config.steps([model.Threshold(v, c) for v, c in steps(t)]))
        if isinstance(builder, timeseries.Panel):
            style = GraphThresholdsStyleConfig().mode(common.GraphTresholdsStyleMode.DASHED)
            builder.thresholds_style(style)
        extra = f"thresholds: {t.label}, {t.source} (opsdrill.runbook.thresholds '{t.key}')"
        builder.description(f"{spec.description}; {extra}" if spec.description else extra)
    return builder


def build() -> model.Dashboard:
    dash = board.Dashboard(TITLE).uid(UID).tags(["ts-forecast", "opsdrill"]).refresh("30s")
    dash.time("now-1h", "now").timezone("utc").editable()
    panel_id = 1
    for row, panels in ROWS.items():
        dash.with_row(board.Row(row).id(panel_id))
        panel_id += 1
        for spec in panels:
            dash.with_panel(_panel(spec, panel_id))
            panel_id += 1
    return dash.build()


def render() -> str:
    """The dashboard JSON, stable (sorted keys) so the committed file can be compared."""
    return json.dumps(build(), cls=JSONEncoder, indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m opsdrill.monitoring.grafana_dashboard",
                                     description=__doc__.splitlines()[0])  # fmt: skip
    parser.parse_args(argv)
    sys.stdout.write(render())
    return 0


if __name__ == "__main__":
    sys.exit(main())
