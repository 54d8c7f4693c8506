"""Every endpoint through the front door: status codes, bodies, metrics, maintenance mode."""

from __future__ import annotations

import time

from opsdrill.plugin.waiting import until
from system.tests.conftest import App, Postgres


def test_health_reports_components(healthy: App) -> None:
    resp = healthy.client.get("/health")
    assert resp.status_code == 200
    body = resp.json()
    assert body["status"] == "ok"
    assert body["components"]["database"]["status"] == "ok"
    assert body["components"]["storage"]["status"] == "ok"


def test_mutating_endpoints_need_the_api_key(healthy: App, pg: Postgres) -> None:
    run = {"series_id": "airpassengers", "model_name": "MLP", "horizon": 12}
    assert healthy.client.post("/runs", json=run).status_code == 401
    wrong = healthy.client.post("/runs", json=run, headers={"X-API-Key": "nope"})
    assert wrong.status_code == 401
    assert healthy.client.post("/runs/1/cancel").status_code == 401
    # failed logins are on record for the monthly security review (runbook §3.3.2)
    until(
        lambda: pg.sql(
            "SELECT 1 FROM system_logs WHERE log_message ILIKE "
            "'%%authentication failed%%invalid X-API-Key%%'"
        ),
        5,
        "failed login in system_logs",
    )


def test_bad_input_is_422_and_unknown_ids_404(healthy: App) -> None:
    a, c = healthy.admin, healthy.client
    assert (
        a.post("/runs", json={"series_id": "airpassengers", "model_name": "ARIMA"}).status_code
        == 422
    )
    assert a.post("/runs", json={"series_id": "airpassengers", "horizon": 0}).status_code == 422
    assert (
        a.post(
            "/runs", content=b"{not json", headers={"content-type": "application/json"}
        ).status_code
        == 422
    )
    assert a.post("/runs", json={"series_id": "nope", "horizon": 12}).status_code == 404
    assert c.get("/runs/abc").status_code == 422
    assert c.get("/runs/999999").status_code == 404
    assert c.get("/runs", params={"status": "exploded"}).status_code == 422
    assert a.post("/runs/999999/cancel").status_code == 404
    assert c.post("/predict", json={"series_id": "airpassengers", "horizon": -1}).status_code == 422
    assert c.post("/predict", json={"horizon": 3}).status_code == 422
    assert c.get("/forecast/airpassengers", params={"horizon": "x"}).status_code == 422
    unknown = c.post("/predict", json={"series_id": "no_such_series", "horizon": 3})
    assert unknown.status_code == 404 and "unknown series" in unknown.json()["detail"]


def test_forecast_from_the_trained_model(healthy: App, trained: dict) -> None:
    c = healthy.client
    resp = c.post("/predict", json={"series_id": "airpassengers", "horizon": 6})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["run_id"] == trained["run_id"] and body["model"] == "MLP"
    assert [p["ds"][:10] for p in body["forecast"]] == [f"1961-{m:02d}-01" for m in range(1, 7)]
    assert all(50 < p["value"] < 2000 for p in body["forecast"])
    same = c.get("/forecast/airpassengers", params={"horizon": 6}).json()
    assert same["forecast"] == body["forecast"]
    t0 = time.perf_counter()
    for _ in range(10):
        assert c.get("/forecast/airpassengers", params={"horizon": 12}).status_code == 200
    assert (time.perf_counter() - t0) / 10 < 0.5  # the SLO, not a benchmark
    too_long = c.post("/predict", json={"series_id": "airpassengers", "horizon": 13})
    assert too_long.status_code == 422 and "trained horizon 12" in too_long.json()["detail"]
    no_model = c.post("/predict", json={"series_id": "synthetic_5", "horizon": 3})
    assert no_model.status_code == 404 and "no trained" in no_model.json()["detail"]
    models = c.get("/models").json()
    mine = next(m for m in models if m["run_id"] == trained["run_id"])
    assert mine["model_size_bytes"] > 0 and mine["training_duration_seconds"] > 0
    assert set(mine["metrics"]) >= {"mae", "rmse"}


def test_schedule_list_get_and_cancel_a_queued_run(healthy: App) -> None:
    a, c = healthy.admin, healthy.client
    # far more steps than anyone waits for: it is cancelled while scheduled or running
    resp = a.post(
        "/runs",
        json={
            "series_id": "synthetic_1",
            "model_name": "NHITS",
            "horizon": 7,
            "run_name": "to-cancel",
            "max_steps": 5000,
        },
    )
    assert resp.status_code == 201
    run = resp.json()
    assert run["status"] == "scheduled" and run["params"] == {"max_steps": 5000}
    assert c.get(f"/runs/{run['run_id']}").json()["run_name"] == "to-cancel"
    listed = c.get("/runs").json()
    assert run["run_id"] in [r["run_id"] for r in listed]
    cancelled = a.post(f"/runs/{run['run_id']}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    again = a.post(f"/runs/{run['run_id']}/cancel")
    assert again.status_code == 409
    only = c.get("/runs", params={"status": "cancelled"}).json()
    assert all(r["status"] == "cancelled" for r in only)


def test_metrics_exposition(healthy: App) -> None:
    healthy.client.get("/runs/424242")
    text = healthy.client.get("/metrics").text
    assert 'http_requests_total{method="GET",path="/runs/{run_id}",status="404"}' in text
    assert "/runs/424242" not in text  # route templates, not raw URLs
    for name in (
        "http_requests_in_progress",
        'http_request_duration_seconds_bucket{le="0.5"',
        "ts_forecast_queued_runs",
        "ts_forecast_active_runs",
        "ts_forecast_db_pool_size",
        "ts_forecast_db_pool_available",
        "ts_forecast_db_pool_waiting",
        "ts_forecast_db_up",
    ):
        assert name in text.replace('{le="0.5",method', '{le="0.5"'), name


def _metric(app: App, name: str) -> float:
    for line in app.client.get("/metrics").text.splitlines():
        if line.split(" ")[0] == name:
            return float(line.split()[-1])
    raise AssertionError(f"{name} not in /metrics")


def test_cache_bypass_needs_the_api_key(healthy: App, trained: dict) -> None:
    """X-Forecast-Cache: bypass is an operator's switch: refused without a valid key, a
    wrong value is an error, and it is never silently ignored."""
    c, url = healthy.client, "/forecast/airpassengers"
    bypass = {"X-Forecast-Cache": "bypass"}
    for headers in (bypass, {**bypass, "X-API-Key": "nope"}):
        for resp in (
            c.get(url, headers=headers),
            c.post("/predict", json={"series_id": "airpassengers"}, headers=headers),
        ):
            assert resp.status_code == 401, (headers, resp.text)
    wrong = c.get(url, headers={"X-Forecast-Cache": "off", "X-API-Key": healthy.env["NF_API_KEY"]})
    assert wrong.status_code == 422 and "bypass" in wrong.json()["detail"]


def test_model_runs_counter_and_cache_bypass(healthy: App, trained: dict) -> None:
    """ts_forecast_model_runs_total counts forecasts that ran the model: cached requests
    add nothing, each bypassing request adds one, so a bench can report runs per forecast."""
    c, key = healthy.client, {"X-API-Key": healthy.env["NF_API_KEY"]}
    assert c.get("/forecast/airpassengers", params={"horizon": 4}).status_code == 200
    runs = _metric(healthy, "ts_forecast_model_runs_total")
    passes = _metric(healthy, "ts_forecast_forward_passes_total")
    for _ in range(5):
        assert c.get("/forecast/airpassengers", params={"horizon": 4}).status_code == 200
    assert _metric(healthy, "ts_forecast_model_runs_total") == runs  # all cache hits
    bodies = []
    for _ in range(5):
        resp = c.get(
            "/forecast/airpassengers",
            params={"horizon": 4},
            headers={**key, "X-Forecast-Cache": "bypass"},
        )
        assert resp.status_code == 200, resp.text
        bodies.append(resp.json())
    assert _metric(healthy, "ts_forecast_model_runs_total") == runs + 5
    assert _metric(healthy, "ts_forecast_forward_passes_total") >= passes + 1
    cached = c.get("/forecast/airpassengers", params={"horizon": 4}).json()
    assert all(b == cached for b in bodies)  # the same model, the same numbers
    assert _metric(healthy, "ts_forecast_model_cache_bytes") > 0


def test_finished_runs_counter_counts_completed_runs(healthy: App) -> None:
    """The training-completion SLO reads this counter (slo.yaml -> slo_rules.yml)."""

    def completed() -> float:
        for line in healthy.client.get("/metrics").text.splitlines():
            if line.startswith('ts_forecast_runs_finished_total{status="completed"}'):
                return float(line.split()[-1])
        return -1.0

    def listed() -> int:
        return len(healthy.client.get("/runs", params={"status": "completed"}).json())

    until(lambda: completed() == listed(), 10, "the counter agrees with GET /runs")
    assert "# TYPE ts_forecast_runs_finished_total counter" in healthy.client.get("/metrics").text


def test_maintenance_mode_on_and_off(healthy: App) -> None:
    on = healthy.ops("maintenance", "on", "upgrading the database")
    assert on.returncode == 0, on.stderr
    try:
        resp = healthy.client.get("/health")
        assert resp.status_code == 503
        assert resp.json() == {"status": "maintenance", "message": "upgrading the database"}
        assert healthy.client.post("/predict", json={"series_id": "x"}).status_code == 503
        assert healthy.client.get("/metrics").status_code == 200
    finally:
        off = healthy.ops("maintenance", "off")
    assert off.returncode == 0, off.stderr
    until(lambda: healthy.client.get("/health").status_code == 200, 5, "maintenance over")


def test_unexpected_error_is_a_clean_500_on_record(healthy: App, pg: Postgres) -> None:
    """A corrupt model file is genuinely unexpected: clean 500, error.log, system_logs."""
    broken = healthy.home / "models" / "corrupt"
    broken.mkdir(parents=True)
    for name in ("configuration.pkl", "alias_to_model.pkl", "MLP_0.ckpt"):
        (broken / name).write_bytes(b"not a pickle")
    run_id = pg.sql(
        "INSERT INTO runs (experiment_id, status, model_name, series_id, horizon, start_time, "
        "end_time) SELECT experiment_id, 'completed', 'MLP', 'synthetic_4', 7, now(), now() "
        "FROM experiments WHERE experiment_name = 'default' RETURNING run_id"
    )[0]["run_id"]
    pg.sql(
        "INSERT INTO models (run_id, model_name, series_id, horizon, path) VALUES "
        "(%s, 'MLP', 'synthetic_4', 7, %s)",
        (run_id, str(broken)),
    )
    resp = healthy.client.post("/predict", json={"series_id": "synthetic_4", "horizon": 3})
    assert resp.status_code == 500 and resp.json() == {"detail": "internal server error"}
    assert (
        "unhandled error on POST /predict"
        in (healthy.home / "logs" / "app" / "error.log").read_text()
    )
    until(
        lambda: pg.sql(
            "SELECT 1 FROM system_logs WHERE log_message LIKE 'unhandled error on POST /predict%%'"
        ),
        5,
        "500 in system_logs",
    )
    metrics = healthy.client.get("/metrics").text
    assert 'http_requests_total{method="POST",path="/predict",status="500"}' in metrics
