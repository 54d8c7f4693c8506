"""MLflow (runbook §2.1, medium, optional) SIGKILLed during training; restarted per §5.3.1.

A training run is going when the server is killed by pid. The run must complete all the same
with its metrics in the database, `pending` for MLflow (the effect); once MLflow is back, the
executor's sweep logs it to MLflow (the procedure's last step waits for that), and the MLflow
run then holds the database's metrics exactly: nothing lost, nothing to re-run.
"""

from __future__ import annotations

import httpx
import psycopg
import pytest

from opsdrill.drill import Detector, DrillSpec
from opsdrill.drill.standard import StandardDrill
from opsdrill.faults import MlflowDown
from opsdrill.recovery.services import restart_mlflow
from opsdrill.targets.base import Target

pytestmark = [
    pytest.mark.destructive,
    pytest.mark.runbook("5.3.1"),
    pytest.mark.fault("mlflow_down", sig="SIGKILL"),
]

#: long enough that the run is still training when MLflow is killed
TRAIN = {"series_id": "airpassengers", "model_name": "MLP", "horizon": 12,
         "run_name": "drill-mlflow-down", "max_steps": 300}  # fmt: skip
RUN_TAG = "nf_auto_runner.run_id"


def _row(admin: str, run_id: int) -> dict[str, object]:
    with (
        psycopg.connect(admin, autocommit=True, connect_timeout=3) as conn,
        conn.cursor(row_factory=psycopg.rows.dict_row) as cur,
    ):
        cur.execute(
            "SELECT status, mlflow_run_id, tracking_status, tracking_error, "
            "(SELECT jsonb_object_agg(name, value) FROM metrics m WHERE m.run_id = r.run_id) "
            "AS metrics FROM runs r WHERE run_id = %s",
            (run_id,),
        )
        return cur.fetchone() or {}


def _start_training(target: Target) -> int:
    """Submit a run and wait until it trains; its id."""
    ep = target.endpoints
    resp = httpx.post(f"{ep.api_url}/runs", json=TRAIN, headers={"X-API-Key": ep.api_key or ""},
                      timeout=10)  # fmt: skip
    assert resp.status_code == 201, resp.text
    run_id: int = resp.json()["run_id"]
    admin = target.admin_dsn
    running = Detector("the run trains", lambda: _row(admin, run_id).get("status") == "running")
    started = running.wait(timeout=120)
    assert started is not None, f"run {run_id} never started: {_row(admin, run_id)}"
    return run_id


def mlflow_down_spec(drill: StandardDrill, run_id: int) -> DrillSpec:
    target, faults = drill.target, drill.faults
    admin = target.admin_dsn

    def completed_untracked() -> bool:
        row = _row(admin, run_id)
        return row.get("status") == "completed" and row.get("tracking_status") == "pending"

    return drill.spec(
        name="mlflow-sigkill",
        title="MLflow tracking server killed (SIGKILL) during training",
        severity="P3",
        fault=MlflowDown(target, sig="SIGKILL"),
        effect=Detector("the run completed, its tracking pending", completed_untracked, 240),
        detectors=[faults.mlflow_silent(timeout=10)],
        also_steady=[faults.mlflow_answers(timeout=10)],
        recover=restart_mlflow(target),
        recovery_timeout=180,
    )


def test_mlflow_killed_during_training_run_completes_and_is_caught_up(
    target: Target, drill: StandardDrill
) -> None:
    if "mlflow" not in target.services:
        pytest.skip(f"target {target.name!r} runs no MLflow server (install opsdrill[mlflow])")
    run_id = _start_training(target)
    drill.run(mlflow_down_spec(drill, run_id))
    row = _row(target.admin_dsn, run_id)
    assert row["status"] == "completed" and row["metrics"], row
    assert row["tracking_status"] == "tracked" and row["mlflow_run_id"], row
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=target.endpoints.mlflow_url)
    tracked = client.get_run(str(row["mlflow_run_id"]))
    assert tracked.data.tags[RUN_TAG] == str(run_id)
    assert tracked.data.metrics == row["metrics"], (tracked.data.metrics, row["metrics"])
