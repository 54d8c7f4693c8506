"""Training runs end to end: a run completes with its model and metrics; a cancelled run's
worker is stopped; a worker killed outright fails its run with the signal named."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

from opsdrill.plugin.waiting import until
from system.tests.conftest import App, Postgres

LONG = {"series_id": "synthetic_2", "model_name": "NHITS", "horizon": 7, "max_steps": 5000}


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _worker_pid(app: App, run_id: int) -> int:
    """Wait until the run is running in its own worker process; return that pid."""
    box: dict[str, Any] = {}

    def started() -> bool:
        box.update(app.client.get(f"/runs/{run_id}").json())
        pid = box.get("worker_pid")
        if box.get("status") != "running" or not pid:
            return False
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return b"nf_auto_runner.worker" in fh.read()

    until(started, 60, f"run {run_id} running in a worker", interval=0.2)
    return int(box["worker_pid"])


def test_completed_run_has_model_metrics_and_timings(
    healthy: App, trained: dict, pg: Postgres
) -> None:
    run = trained
    assert run["start_time"] and run["end_time"] and run["execution_duration_seconds"] > 0
    assert run["error_message"] is None
    model = pg.sql("SELECT * FROM models WHERE run_id = %s", (run["run_id"],))[0]
    assert os.path.isdir(model["path"]) and model["model_size_bytes"] > 1000
    names = {
        r["name"] for r in pg.sql("SELECT name FROM metrics WHERE run_id = %s", (run["run_id"],))
    }
    assert names == {"mae", "rmse", "mape"}


def test_cancel_stops_the_worker_and_stays_cancelled(healthy: App) -> None:
    run_id = healthy.admin.post("/runs", json=LONG).json()["run_id"]
    pid = _worker_pid(healthy, run_id)
    gauge = f'ts_forecast_run_start_time{{run_id="{run_id}"}}'
    until(lambda: gauge in healthy.client.get("/metrics").text, 5, "run start-time gauge")
    resp = healthy.admin.post(f"/runs/{run_id}/cancel")
    assert resp.status_code == 200 and resp.json()["status"] == "cancelled"
    took = until(lambda: not _alive(pid), 5, f"worker {pid} gone after cancel")
    assert took < 3.0
    assert healthy.client.get(f"/runs/{run_id}").json()["status"] == "cancelled"


def test_killed_worker_fails_its_run_naming_the_signal(healthy: App, pg: Postgres) -> None:
    run_id = healthy.admin.post("/runs", json=LONG).json()["run_id"]
    pid = _worker_pid(healthy, run_id)
    os.kill(pid, signal.SIGKILL)
    run = healthy.wait_run(run_id, ("failed", "completed", "cancelled"), timeout=10)
    assert run["status"] == "failed"
    assert "SIGKILL" in run["error_message"] and "out of memory" in run["error_message"]
    logs = pg.sql("SELECT log_level, exception_type FROM system_logs WHERE run_id = %s", (run_id,))
    assert {"log_level": "ERROR", "exception_type": "WorkerKilled"} in logs


def test_worker_exception_fails_the_run_with_its_type(
    healthy: App, pg: Postgres, tmp_path: Path
) -> None:
    procs = tmp_path / "cgroup.procs"
    procs.write_text("")
    env = dict(healthy.env, NF_WORKER_CGROUP_PROCS=str(procs))
    # 240 daily points cannot hold out 100: the worker raises ValueError
    done = healthy.ops("train-now", "--series-id", "synthetic_2", "--horizon", "100", env=env)
    assert done.returncode != 0
    run = json.loads(done.stdout)
    assert run["status"] == "failed" and run["error_message"].startswith("ValueError")
    assert int(procs.read_text()) == run["worker_pid"]  # joined the cgroup first
    logs = pg.sql("SELECT exception_type FROM system_logs WHERE run_id = %s", (run["run_id"],))
    assert {"exception_type": "ValueError"} in logs


def test_concurrent_claims_never_take_the_same_run(app: App, pg: Postgres) -> None:
    """Two executors claiming at once get different runs (FOR UPDATE SKIP LOCKED), on a
    scratch database so the live executor does not take part."""
    import psycopg
    from nf_auto_runner import runs
    from nf_auto_runner.migrate import migrate
    from psycopg.rows import dict_row

    pg.sql("DROP DATABASE IF EXISTS nf_claim_race")
    pg.sql("CREATE DATABASE nf_claim_race OWNER nf_app")
    url = pg.dsn.replace("/ts_forecast_system", "/nf_claim_race")
    try:
        migrate(url)
        with psycopg.connect(url, autocommit=True, row_factory=dict_row) as setup:
            setup.execute("INSERT INTO series_catalog (series_id, freq) VALUES ('s', 'D')")
            for _ in range(2):
                runs.create(
                    setup, series_id="s", model_name="MLP", horizon=1, run_name=None, params={}
                )
        with (
            psycopg.connect(url, row_factory=dict_row) as a,
            psycopg.connect(url, row_factory=dict_row) as b,
        ):
            first = runs.claim_next(a, 1)  # a's transaction stays open: the row stays locked
            second = runs.claim_next(b, 2)
            third = runs.claim_next(b, 2)
            assert first and second and first["run_id"] != second["run_id"]
            assert third is None
    finally:
        pg.sql("DROP DATABASE IF EXISTS nf_claim_race WITH (FORCE)")
