"""The MLflow checks pass on a healthy stack and fail on a broken one: a run whose metrics in
MLflow differ from the database's, an MLflow run naming no run row, MLflow stopped.

`pytest checks/test_mlflow.py` runs in a subprocess against a stack of this module's own.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from opsdrill.targets import mlflow_service
from opsdrill.targets.local import LocalTarget
from tests.conftest import world_traversable_tmpdir

REPO = Path(__file__).resolve().parents[1]
SERVER = "test_mlflow_server_answers"
METRICS = "test_completed_runs_of_the_last_day_are_in_mlflow_with_equal_metrics"
BACK = "test_every_mlflow_run_points_back_to_a_run_row"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not mlflow_service.installed(),
                       reason="the mlflow package is not installed (pip install -e .[mlflow])"),
]  # fmt: skip


@pytest.fixture(scope="module")
def own_stack() -> Iterator[LocalTarget]:
    where = world_traversable_tmpdir("opsdrill-mlflow-")
    target = LocalTarget(where / "state", monitoring=False)
    target.up(say=lambda _line: None)
    try:
        yield target
    finally:
        target.destroy()
        shutil.rmtree(where, ignore_errors=True)


def failing(target: LocalTarget, junit: Path) -> set[str]:
    """Names of the MLflow checks that failed or errored."""
    subprocess.run(
        [sys.executable, "-m", "pytest", "checks/test_mlflow.py", "--target",
         f"local:{target.state_dir}", "-p", "no:cacheprovider", "-q", f"--junitxml={junit}"],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    return {
        case.get("name", "")
        for case in ET.parse(junit).iter("testcase")
        if case.find("failure") is not None or case.find("error") is not None
    }


def _client(target: LocalTarget):  # type: ignore[no-untyped-def]
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=target.endpoints.mlflow_url)


def test_mlflow_checks_pass_then_fail_on_each_break(own_stack: LocalTarget, tmp_path: Path) -> None:
    import psycopg

    assert "mlflow" in own_stack.services, "the stack did not start MLflow although installed"
    assert failing(own_stack, tmp_path / "healthy.xml") == set()

    with psycopg.connect(own_stack.admin_dsn, autocommit=True) as conn:
        mlflow_id, mae = conn.execute(
            "SELECT r.mlflow_run_id, m.value FROM runs r JOIN metrics m USING (run_id) "
            "WHERE m.name = 'mae' AND r.mlflow_run_id IS NOT NULL ORDER BY run_id LIMIT 1"
        ).fetchone()
    client = _client(own_stack)
    client.log_metric(mlflow_id, "mae", mae + 1.0, step=0)
    try:
        assert failing(own_stack, tmp_path / "metrics.xml") == {METRICS}
    finally:
        client.log_metric(mlflow_id, "mae", mae, step=0)

    experiment = client.get_experiment_by_name("nf_auto_runner").experiment_id
    stray = client.create_run(experiment, tags={"nf_auto_runner.run_id": "999999"})
    try:
        assert failing(own_stack, tmp_path / "orphan.xml") == {BACK}
    finally:
        client.delete_run(stray.info.run_id)

    mlflow = own_stack.service("mlflow")
    mlflow.stop()
    try:
        assert failing(own_stack, tmp_path / "stopped.xml") == {SERVER, METRICS, BACK}
    finally:
        mlflow.start(timeout=120)
    assert failing(own_stack, tmp_path / "again.xml") == set()
