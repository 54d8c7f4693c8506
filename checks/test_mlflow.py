"""MLflow (runbook §2.1–2.2, experiment tracking), checked daily (§3.1.1): the server
answers, and the database and MLflow agree run for run: every run completed in the last day
has its MLflow run, with the same metrics (values equal), and every MLflow run of the stack
names a run row that exists.

The trainer logs each completed run (nf_auto_runner.tracking); a run MLflow missed while it
was down is `pending` until the executor's sweep catches it up, and such a run is a finding
here only once it has waited longer than a sweep could need (CATCH_UP_GRACE).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from opsdrill.targets.base import Target

pytestmark = [pytest.mark.readonly, pytest.mark.runbook("3.1.1")]

EXPERIMENT = "nf_auto_runner"
RUN_TAG = "nf_auto_runner.run_id"
#: seconds a completed run may wait for the catch-up sweep (10 s) and the client's start
CATCH_UP_GRACE = 120


@pytest.fixture(scope="module")
def mlflow_url(target: Target) -> str:
    url = target.endpoints.mlflow_url
    if url is None:
        pytest.skip(f"target {target.name!r} runs no MLflow server (install opsdrill[mlflow])")
    return url


@pytest.fixture(scope="module")
def mlflow_runs(mlflow_url: str) -> Iterator[dict[str, Any]]:
    """The stack's MLflow runs (active), by their MLflow run id."""
    import os

    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=mlflow_url)
    try:
        experiment = client.get_experiment_by_name(EXPERIMENT)
        found = [] if experiment is None else client.search_runs(
            [experiment.experiment_id], max_results=5000
        )  # fmt: skip
    except MlflowException as exc:
        pytest.fail(f"MLflow at {mlflow_url} did not list its runs: {str(exc)[:300]}")
    yield {r.info.run_id: r for r in found}


def test_mlflow_server_answers(mlflow_url: str) -> None:
    try:
        resp = httpx.get(f"{mlflow_url}/health", timeout=5.0)
    except httpx.HTTPError as exc:
        pytest.fail(
            f"MLflow at {mlflow_url} does not answer ({exc!r}); fix: restart it (runbook "
            "§5.3.1), then completed runs are caught up by the executor's sweep"
        )
    assert resp.status_code == 200, f"MLflow /health answered {resp.status_code}: {resp.text[:200]}"


def test_completed_runs_of_the_last_day_are_in_mlflow_with_equal_metrics(
    read: Any, mlflow_runs: dict[str, Any]
) -> None:
    rows = read(
        "SELECT r.run_id, r.mlflow_run_id, r.tracking_status, r.tracking_error, "
        "EXTRACT(EPOCH FROM now() - r.end_time) AS age, "
        "COALESCE(jsonb_object_agg(m.name, m.value) FILTER (WHERE m.name IS NOT NULL), '{}') "
        "AS metrics FROM runs r LEFT JOIN metrics m ON m.run_id = r.run_id "
        "WHERE r.status = 'completed' AND r.end_time > now() - interval '1 day' "
        "GROUP BY r.run_id ORDER BY r.run_id"
    )
    problems = []
    for row in rows:
        run = f"run {row['run_id']}"
        if row["mlflow_run_id"] is None:
            if row["age"] > CATCH_UP_GRACE:
                problems.append(f"{run} has no MLflow run after {row['age']:.0f} s "
                                f"({row['tracking_status']}: {row['tracking_error']})")  # fmt: skip
            continue
        found = mlflow_runs.get(row["mlflow_run_id"])
        if found is None:
            problems.append(f"{run} names MLflow run {row['mlflow_run_id']}, which MLflow lacks")
            continue
        if found.data.tags.get(RUN_TAG) != str(row["run_id"]):
            problems.append(f"{run}: its MLflow run's tag {RUN_TAG} is "
                            f"{found.data.tags.get(RUN_TAG)!r}")  # fmt: skip
        if found.data.metrics != row["metrics"]:
            problems.append(f"{run}: metrics in the database {row['metrics']} != in MLflow "
                            f"{found.data.metrics}")  # fmt: skip
    assert not problems, (
        f"{len(problems)} of {len(rows)} completed run(s) of the last day disagree with MLflow: "
        + "; ".join(problems[:5])
        + "; fix: a run without an MLflow run is caught up by `python -m nf_auto_runner.tracking`"
    )


def test_every_mlflow_run_points_back_to_a_run_row(read: Any, mlflow_runs: dict[str, Any]) -> None:
    ids = {int(t) for r in mlflow_runs.values() if (t := r.data.tags.get(RUN_TAG, "")).isdigit()}
    rows = read("SELECT run_id, mlflow_run_id FROM runs WHERE run_id = ANY(%s)", (list(ids),))
    known = {r["run_id"]: r["mlflow_run_id"] for r in rows}
    orphans = []
    for mlflow_id, run in mlflow_runs.items():
        tag = run.data.tags.get(RUN_TAG, "")
        if not tag.isdigit() or int(tag) not in known:
            orphans.append(f"{mlflow_id} (tag {RUN_TAG}={tag!r}: no such run row)")
        elif known[int(tag)] != mlflow_id:
            orphans.append(f"{mlflow_id} (run {tag} names {known[int(tag)]} instead)")
    assert not orphans, (
        f"{len(orphans)} of {len(mlflow_runs)} MLflow run(s) do not point back to their run row: "
        + "; ".join(orphans[:5])
    )
