"""Runbook §4.1.1 (the Grafana dashboard) and §4.1.2 (its thresholds), checked for real.

No Grafana server can run here, so the dashboard is not rendered: every panel's PromQL is
evaluated against the stack's Prometheus and must return data on a healthy stack (a blank
panel is a finding, named with its row and query), and every threshold on a panel must equal
opsdrill's own (`opsdrill.runbook.thresholds`, one source). The dashboard is the committed
system/grafana/ts-forecast.json, or $OPSDRILL_DASHBOARD to check another.
"""

from __future__ import annotations

import httpx
import pytest

from opsdrill.monitoring.grafana_dashboard import PANELS
from opsdrill.runbook import dashboard_panels
from opsdrill.runbook.thresholds import RUNBOOK_ROWS, THRESHOLDS
from opsdrill.targets.base import Target

pytestmark = [pytest.mark.readonly, pytest.mark.runbook("4.1.1")]

#: forecasts sent first, so the latency and cache panels have traffic in their window
FORECASTS = 5


def _forecast(api: httpx.Client) -> None:
    api.get("/forecast/airpassengers", params={"horizon": 12})


def test_every_panel_has_data(target: Target, api: httpx.Client) -> None:
    url = target.endpoints.prometheus_url
    if url is None:
        pytest.skip(f"target {target.name!r} has no Prometheus to evaluate the panels against")
    for _ in range(FORECASTS):  # a stack in use, as an operator opens the dashboard on
        _forecast(api)
    _, queries = dashboard_panels.load()
    assert queries, f"{dashboard_panels.dashboard_path()} has no panel queries"
    # one forecast per polling round (at most 90): the latency rate needs requests that
    # span two scrapes, not only a burst before the first one
    blank = dashboard_panels.blank_panels(
        url, queries, timeout=90.0, between=lambda: _forecast(api)
    )
    assert not blank, (
        f"{len(blank)} of {len(queries)} dashboard queries show nothing on this stack "
        f"({dashboard_panels.dashboard_path()}): "
        + "; ".join(f"{k}: {v}" for k, v in blank.items())
    )


@pytest.mark.runbook("4.1.2")
def test_panel_thresholds_are_opsdrills() -> None:
    board, queries = dashboard_panels.load()
    by_panel = {q.panel: q.thresholds for q in queries}
    judged = {spec.title: spec.threshold for spec in PANELS if spec.threshold}
    assert set(RUNBOOK_ROWS) <= set(judged.values()), (
        f"§4.1.2 rows without a panel: {sorted(set(RUNBOOK_ROWS) - set(judged.values()))}"
    )
    for title, key in judged.items():
        assert title in by_panel, f"the dashboard has no panel {title!r} (§4.1.2 row {key})"
        t = THRESHOLDS[key]
        want = [None, t.normal_below, t.warning_above, t.critical_above]
        got = [value for value, _ in by_panel[title]]
        assert got == want, (
            f"panel {title!r} thresholds {got} differ from opsdrill's {key!r} {want} "
            f"({t.source}); regenerate: python -m opsdrill.monitoring.grafana_dashboard > "
            "system/grafana/ts-forecast.json"
        )
    rows = [p["title"] for p in board["panels"] if p["type"] == "row"]
    assert rows == ["System Overview", "Application Metrics", "Database Metrics",
                    "Performance Metrics"], f"the dashboard's rows are {rows}"  # fmt: skip
