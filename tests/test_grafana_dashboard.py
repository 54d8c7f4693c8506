"""The committed Grafana dashboard is what opsdrill.monitoring.grafana_dashboard gives, the
library's model reads it back unchanged, and its provisioning files name its datasource.

The live checks (every panel has data, thresholds) are checks/test_grafana_dashboard.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import Dashboard

from opsdrill.monitoring import grafana_dashboard
from opsdrill.runbook import dashboard_panels

ROOT = Path(__file__).resolve().parents[1]
GRAFANA = ROOT / "system" / "grafana"


def test_committed_dashboard_is_current() -> None:
    regenerate = "python -m opsdrill.monitoring.grafana_dashboard > system/grafana/ts-forecast.json"
    assert (GRAFANA / "ts-forecast.json").read_text() == grafana_dashboard.render(), regenerate


def test_dashboard_validates_against_the_library_model() -> None:
    data = json.loads((GRAFANA / "ts-forecast.json").read_text())
    back = json.loads(json.dumps(Dashboard.from_json(data), cls=JSONEncoder))
    assert back == data, "the dashboard has fields Grafana's model does not know or keep"


def test_cli_prints_the_dashboard() -> None:
    out = subprocess.run([sys.executable, "-m", "opsdrill.monitoring.grafana_dashboard"],
                         capture_output=True, text=True, check=False, cwd=ROOT)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["uid"] == grafana_dashboard.UID


def test_provisioning_names_the_dashboards_datasource() -> None:
    sources = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yml").read_text())
    uids = {s["uid"] for s in sources["datasources"]}
    _, queries = dashboard_panels.load(GRAFANA / "ts-forecast.json")
    board = json.loads((GRAFANA / "ts-forecast.json").read_text())
    used = {p["datasource"]["uid"] for p in board["panels"] if p["type"] != "row"}
    assert used == {grafana_dashboard.DATASOURCE_UID} <= uids
    providers = yaml.safe_load((GRAFANA / "provisioning/dashboards/ts-forecast.yml").read_text())
    assert providers["providers"][0]["type"] == "file"
    assert len(queries) >= 20
