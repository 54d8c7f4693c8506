"""The MLflow checks pass on a healthy stack and fail on a broken one: a run whose metrics in
MLflow differ from the database's, an MLflow run naming no run row, MLflow stopped.

`pytest checks/test_mlflow.py` runs in a subprocess against the session's stack (each break
is undone in a `finally`). The two agreement breaks go into one run, each check's message
naming its own break, so the module costs four check runs and one MLflow restart, not a
stack of its own.
"""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from opsdrill.targets.local import mlflow_service

REPO = Path(__file__).resolve().parents[1]
SERVER = "test_mlflow_server_answers"
METRICS = "test_completed_runs_of_the_last_day_are_in_mlflow_with_equal_metrics"
BACK = "test_every_mlflow_run_points_back_to_a_run_row"
STRAY = "999999"  # a run id no run row has

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not mlflow_service.installed(),
                       reason="the mlflow package is not installed (pip install -e .[mlflow])"),
]  # fmt: skip


def failing(target: Any, junit: Path) -> dict[str, str]:
    """The MLflow checks that failed or errored, with their messages."""
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "checks/test_mlflow.py", "--target",
         f"local:{target.state_dir}", "-p", "no:cacheprovider", "-q", f"--junitxml={junit}"],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert junit.exists(), done.stdout[-2000:] + done.stderr[-2000:]
    found = {}
    for case in ET.parse(junit).iter("testcase"):
        bad = case.find("failure") if case.find("failure") is not None else case.find("error")
        if bad is not None:
            found[case.get("name", "")] = (bad.get("message") or "") + (bad.text or "")
    return found


def _client(target: Any) -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=target.endpoints.mlflow_url)


def _tracked_mae(target: Any) -> tuple[int, str, float]:
    """A tracked run: its id, its MLflow run id and its `mae` in the database."""
    import psycopg

    with psycopg.connect(target.admin_dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT r.run_id, r.mlflow_run_id, m.value FROM runs r JOIN metrics m USING (run_id) "
            "WHERE m.name = 'mae' AND r.mlflow_run_id IS NOT NULL ORDER BY run_id LIMIT 1"
        ).fetchone()
    assert row is not None, "no completed run of the stack is tracked in MLflow"
    return row[0], row[1], row[2]


def test_mlflow_checks_pass_then_fail_on_each_break(stack: Any, tmp_path: Path) -> None:
    assert "mlflow" in stack.services, "the stack did not start MLflow although installed"
    assert failing(stack, tmp_path / "healthy.xml") == {}

    run_id, mlflow_id, mae = _tracked_mae(stack)
    client = _client(stack)
    experiment = client.get_experiment_by_name("nf_auto_runner").experiment_id
    client.log_metric(mlflow_id, "mae", mae + 1.0, step=0)
    stray = client.create_run(experiment, tags={"nf_auto_runner.run_id": STRAY})
    try:
        broken = failing(stack, tmp_path / "agreement.xml")
    finally:
        client.log_metric(mlflow_id, "mae", mae, step=0)
        client.delete_run(stray.info.run_id)
    assert set(broken) == {METRICS, BACK}, broken
    assert f"run {run_id}: metrics in the database" in broken[METRICS], broken[METRICS]
    assert f"{stray.info.run_id} (tag nf_auto_runner.run_id='{STRAY}'" in broken[BACK]

    mlflow = stack.service("mlflow")
    mlflow.stop()
    try:
        stopped = failing(stack, tmp_path / "stopped.xml")
    finally:
        mlflow.start(timeout=120)
    assert set(stopped) == {SERVER, METRICS, BACK}, stopped
    assert "does not answer" in stopped[SERVER], stopped[SERVER]
    assert failing(stack, tmp_path / "again.xml") == {}
