"""MLflow (runbook §2.1, medium, optional) SIGKILLed during training; restarted per §5.3.1.

A training run is going when the server's serving process is killed by pid. The run must
complete all the same with its metrics in the database, `pending` for MLflow with the reason
(the effect); once MLflow is back, the executor's sweep logs it to MLflow (the procedure's
last step waits for that), and the MLflow run then holds the database's metrics exactly.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import psycopg
import pytest

from opsdrill.drill import Detector, DrillSpec, run_drill
from opsdrill.faults import MlflowDown
from opsdrill.recovery.procedures import restart_mlflow
from opsdrill.targets.base import Target

from .conftest import AssertDrill, Probes

pytestmark = [
    pytest.mark.destructive,
    pytest.mark.runbook("5.3.1"),
    pytest.mark.fault("mlflow_down", sig="SIGKILL"),
]

#: long enough that the run is still training when MLflow is killed
TRAIN = {"series_id": "airpassengers", "model_name": "MLP", "horizon": 12,
         "run_name": "drill-mlflow-down", "max_steps": 300}  # fmt: skip


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


def test_mlflow_killed_during_training_run_completes_and_is_caught_up(
    target: Target, probes: Probes, incident_dir: Path, assert_drill: AssertDrill
) -> None:
    if target.endpoints.mlflow_url is None:
        pytest.skip(f"target {target.name!r} runs no MLflow server (install opsdrill[mlflow])")
    ep, admin = target.endpoints, target.admin_dsn
    mlflow_health = f"{ep.mlflow_url}/health"
    resp = httpx.post(f"{ep.api_url}/runs", json=TRAIN, headers={"X-API-Key": ep.api_key or ""},
                      timeout=10)  # fmt: skip
    assert resp.status_code == 201, resp.text
    run_id = resp.json()["run_id"]
    running = Detector("the run trains", lambda: _row(admin, run_id).get("status") == "running")
    assert running.wait(timeout=120) is not None, (
        f"run {run_id} never started: {_row(admin, run_id)}"
    )

    def mlflow_silent() -> bool:
        try:
            httpx.get(mlflow_health, timeout=1.0)
        except httpx.HTTPError:
            return True
        return False

    def completed_untracked() -> bool:
        row = _row(admin, run_id)
        return row.get("status") == "completed" and row.get("tracking_status") == "pending"

    spec = DrillSpec(
        name="mlflow-sigkill",
        title="MLflow tracking server killed (SIGKILL) during training",
        runbook="5.3.1",
        severity="P3",
        fault=MlflowDown(target),
        effect=Detector("the run completed, its tracking pending", completed_untracked, 240),
        detectors=[Detector("MLflow /health gets no answer", mlflow_silent, 10)],
        steady=[
            *probes.steady(),
            Detector("MLflow /health 200", lambda: not mlflow_silent(), 10),
        ],
        recover=restart_mlflow(target),
        availability_url=f"{ep.api_url}/health",
        endpoints=ep,
        recovery_timeout=180,
    )
    result = run_drill(spec, incident_dir)
    assert_drill(result)
    row = _row(admin, run_id)
    assert row["status"] == "completed" and row["metrics"], row
    assert row["tracking_status"] == "tracked" and row["mlflow_run_id"], row
    from mlflow.tracking import MlflowClient

    tracked = MlflowClient(tracking_uri=ep.mlflow_url).get_run(str(row["mlflow_run_id"]))
    assert tracked.data.tags["nf_auto_runner.run_id"] == str(run_id)
    assert tracked.data.metrics == row["metrics"], (tracked.data.metrics, row["metrics"])
