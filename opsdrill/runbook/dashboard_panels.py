"""The committed Grafana dashboard's panels and queries, evaluated against a live Prometheus.

No Grafana server runs here, so what a panel would show is what its PromQL returns now:
`blank_panels` lists the queries with no data (a dashboard that is blank during an incident
is a finding), and `panel_value` is what a drill reads to see a panel show its symptom.
`OPSDRILL_DASHBOARD` points at another dashboard JSON to check an operator's own.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opsdrill.drill.detector import Detector
from opsdrill.polling import poll
from opsdrill.probes.prometheus import PrometheusError, query_max

__all__ = [
    "DASHBOARD",
    "PanelQuery",
    "blank_panels",
    "load",
    "panel_detector",
    "panel_query",
    "panel_value",
]

DASHBOARD = Path(__file__).resolve().parents[2] / "system" / "grafana" / "ts-forecast.json"
ENV = "OPSDRILL_DASHBOARD"


@dataclass(frozen=True)
class PanelQuery:
    row: str
    panel: str
    ref_id: str
    expr: str
    thresholds: tuple[tuple[float | None, str], ...]

    @property
    def name(self) -> str:
        return f"panel {self.panel!r} ({self.row}) query {self.ref_id}"


def dashboard_path() -> Path:
    return Path(os.environ.get(ENV) or DASHBOARD)


def load(path: Path | None = None) -> tuple[dict[str, Any], list[PanelQuery]]:
    """The dashboard JSON and every panel query in it, each with the row it sits under."""
    path = path or dashboard_path()
    board = json.loads(path.read_text())
    queries, row = [], ""
    for panel in board["panels"]:
        if panel["type"] == "row":
            row = panel["title"]
            continue
        steps = panel.get("fieldConfig", {}).get("defaults", {}).get("thresholds", {})
        thresholds = tuple((s.get("value"), s["color"]) for s in steps.get("steps", []))
        for target in panel.get("targets", []):
            queries.append(
                PanelQuery(row, panel["title"], target["refId"], target["expr"], thresholds)
            )
    return board, queries


def blank_panels(
    prometheus_url: str,
    queries: list[PanelQuery],
    timeout: float = 30.0,
    between: Callable[[], object] | None = None,
) -> dict[str, str]:
    """{query name: why} for every query still without data (or failing) at the deadline.

    Polled, not asked once: rate() over a fresh counter needs a second scrape. `between`
    runs before every round while queries are blank (traffic, as on a stack in use): a
    latency histogram whose series were born with all their requests in one scrape has a
    zero rate, and its quantile is NaN (blank) until requests arrive across scrapes."""
    pending = {q.name: q for q in queries}
    why: dict[str, str] = {}

    def answered() -> bool | None:
        if between is not None:
            between()
        for name, query in list(pending.items()):
            try:
                found = query_max(prometheus_url, query.expr)
            except PrometheusError as exc:  # a broken query will not heal: no more polling
                why[name] = f"`{query.expr}` fails: {exc}"
                del pending[name]
                continue
            if found is not None:
                del pending[name]
                why.pop(name, None)
            else:
                why[name] = f"`{query.expr}` returns no data"
        return None if pending else True

    if pending:
        poll(answered, timeout, interval=1.0)
    return why


def panel_query(panel: str, ref_id: str = "A") -> PanelQuery:
    _, queries = load()
    found = [q for q in queries if q.panel == panel and q.ref_id == ref_id]
    if not found:
        raise KeyError(f"the dashboard has no panel {panel!r} with query {ref_id}")
    return found[0]


def panel_value(prometheus_url: str, query: PanelQuery) -> float | None:
    """The largest value the panel's query shows now (None: blank)."""
    hit = query_max(prometheus_url, query.expr)
    return None if hit is None else hit[0]


def panel_detector(
    prometheus_url: str | None, panel: str, ref_id: str, above: float, timeout: float = 30.0
) -> Detector:
    """A drill's detector: the runbook's panel shows the symptom (its value above `above`)."""
    query = panel_query(panel, ref_id)
    name = f"Grafana panel {panel!r} ({query.ref_id}) shows > {above:g}"
    if prometheus_url is None:
        return Detector(name, lambda: False, timeout, skipped="skipped: no Prometheus")

    def check() -> bool:
        value = panel_value(prometheus_url, query)
        return value is not None and value > above

    return Detector(name, check, timeout)
