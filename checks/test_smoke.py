"""Smoke: the stack answers health, forecasts, and trains — the gate every game day opens with."""

from __future__ import annotations

import httpx
import pytest

from opsdrill.targets.first_data import wait_for_run

pytestmark = pytest.mark.readonly  # the few that write are marked sandbox, which wins

OK = ("ok", "disabled")


@pytest.mark.runbook("3.1.1")
def test_health_reports_every_component_ok(api: httpx.Client) -> None:
    resp = api.get("/health")
    assert resp.status_code == 200, f"/health answered {resp.status_code}: {resp.text}"
    body = resp.json()
    # "disabled": an optional part this deployment does not run (the Redis result cache)
    bad = {k: v for k, v in body["components"].items() if v.get("status") not in OK}
    assert not bad, f"/health is 200 but components are not ok: {bad}"


@pytest.mark.runbook("2.3")
def test_forecast_returns_horizon_points(api: httpx.Client) -> None:
    resp = api.post("/predict", json={"series_id": "airpassengers", "horizon": 12})
    assert resp.status_code == 200, f"/predict answered {resp.status_code}: {resp.text}"
    values = [p["value"] for p in resp.json()["forecast"]]
    assert len(values) == 12
    assert all(isinstance(v, float) and v == v for v in values), f"non-finite forecast: {values}"


@pytest.mark.sandbox
@pytest.mark.runbook("3.1.3")
def test_training_run_completes_and_serves(api_admin: httpx.Client, target) -> None:
    resp = api_admin.post(
        "/runs",
        json={"series_id": "synthetic_1", "model_name": "MLP", "horizon": 7,
              "run_name": "opsdrill-smoke"},
    )  # fmt: skip
    assert resp.status_code == 201, f"POST /runs answered {resp.status_code}: {resp.text}"
    run = wait_for_run(target.endpoints.api_url, resp.json()["run_id"], timeout=180)
    assert run["status"] == "completed", f"run ended {run['status']}: {run.get('error_message')}"
    forecast = api_admin.get("/forecast/synthetic_1", params={"horizon": 7})
    assert forecast.status_code == 200, forecast.text
    assert forecast.json()["run_id"] == run["run_id"], "the new model is not the one serving"
