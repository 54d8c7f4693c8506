"""MLflow tracking of training runs, which must never fail a run.

Decision (issue 13): a completed run is **caught up when MLflow is back**, never lost. The
worker marks the run `tracking_status = 'pending'` in the same transaction that records its
result, then logs it to MLflow; if MLflow does not answer, the run stays `pending` with the
reason in `tracking_error`, and the run itself is `completed` all the same. The executor's
sweep starts `python -m nf_auto_runner.tracking` while pending runs exist; it logs each one
from what the database and model storage hold (params, the `metrics` rows, the model files),
so nothing depends on the worker that trained it. Each MLflow run carries the tag
`nf_auto_runner.run_id`; the run row gets `mlflow_run_id`. A half-logged MLflow run (its
status not FINISHED) is deleted and logged again, so a crash mid-way leaves no partial twin.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg

__all__ = ["EXPERIMENT", "RUN_TAG", "catch_up", "pending_runs", "spawn_catch_up", "track_run"]

log = logging.getLogger(__name__)

EXPERIMENT = "nf_auto_runner"
RUN_TAG = "nf_auto_runner.run_id"
#: a tracking call gives up fast: a training run never waits minutes on a dead server
CLIENT_ENV = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}


def tracking_uri() -> str | None:
    return os.environ.get("MLFLOW_TRACKING_URI") or None


def _client(uri: str) -> Any:
    for key, value in CLIENT_ENV.items():
        os.environ.setdefault(key, value)
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def _experiment_id(client: Any) -> str:
    found = client.get_experiment_by_name(EXPERIMENT)
    return found.experiment_id if found is not None else client.create_experiment(EXPERIMENT)


def track_run(conn: psycopg.Connection[Any], run_id: int, uri: str) -> str:
    """Log run `run_id` (completed) to MLflow; store and return its MLflow run id."""
    from mlflow.entities import Metric, Param, RunTag

    row = conn.execute(
        "SELECT r.run_id, r.run_name, r.model_name, r.series_id, r.horizon, r.params, "
        "m.path FROM runs r LEFT JOIN models m ON m.run_id = r.run_id WHERE r.run_id = %s",
        (run_id,),
    ).fetchone()
    if row is None:
        raise LookupError(f"run {run_id} not found")
    metrics = conn.execute(
        "SELECT name, value FROM metrics WHERE run_id = %s", (run_id,)
    ).fetchall()
    client = _client(uri)
    experiment = _experiment_id(client)
    for old in client.search_runs([experiment], f"tags.`{RUN_TAG}` = '{run_id}'"):
        if old.info.status == "FINISHED":
            return _store(conn, run_id, old.info.run_id)
        client.delete_run(old.info.run_id)  # a half-logged twin: log it again whole
    params = {"model_name": row["model_name"], "series_id": row["series_id"],
              "horizon": row["horizon"], **(row["params"] or {})}  # fmt: skip
    run = client.create_run(experiment, tags={RUN_TAG: str(run_id)}, run_name=row["run_name"])
    mlflow_id = run.info.run_id
    client.log_batch(
        mlflow_id,
        metrics=[Metric(m["name"], float(m["value"]), 0, 0) for m in metrics],
        params=[Param(k, str(v)) for k, v in params.items()],
        tags=[RunTag("nf_auto_runner.model_path", str(row["path"] or ""))],
    )
    if row["path"] and Path(row["path"]).is_dir():
        client.log_artifacts(mlflow_id, row["path"], artifact_path="model")
    client.set_terminated(mlflow_id, "FINISHED")
    return _store(conn, run_id, mlflow_id)


def _store(conn: psycopg.Connection[Any], run_id: int, mlflow_id: str) -> str:
    conn.execute(
        "UPDATE runs SET mlflow_run_id = %s, tracking_status = 'tracked', tracking_error = NULL "
        "WHERE run_id = %s",
        (mlflow_id, run_id),
    )
    return mlflow_id


def track_or_defer(conn: psycopg.Connection[Any], run_id: int) -> None:
    """The worker's call: log now, or leave the run `pending` with the reason. Never raises."""
    uri = tracking_uri()
    if uri is None:
        return
    try:
        mlflow_id = track_run(conn, run_id, uri)
        log.info("run %s tracked in MLflow as %s", run_id, mlflow_id)
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}".strip()[:500]
        log.warning("run %s not tracked in MLflow yet (%s); caught up later", run_id, reason)
        try:
            conn.execute(
                "UPDATE runs SET tracking_error = %s WHERE run_id = %s AND "
                "tracking_status = 'pending'",
                (reason, run_id),
            )
        except psycopg.Error:
            log.exception("could not record why run %s is not tracked", run_id)


def pending_runs(conn: psycopg.Connection[Any]) -> list[int]:
    rows = conn.execute(
        "SELECT run_id FROM runs WHERE tracking_status = 'pending' AND status = 'completed' "
        "ORDER BY run_id"
    ).fetchall()
    return [r["run_id"] for r in rows]


def catch_up(conn: psycopg.Connection[Any], uri: str) -> tuple[list[int], list[str]]:
    """Log every pending run; (the runs tracked now, the errors of those still pending)."""
    done, errors = [], []
    for run_id in pending_runs(conn):
        try:
            track_run(conn, run_id, uri)
            done.append(run_id)
        except Exception as exc:
            errors.append(f"run {run_id}: {type(exc).__name__}: {exc}"[:300])
            break  # MLflow is still away: the next sweep tries again
    return done, errors


_running: subprocess.Popen[bytes] | None = None


def spawn_catch_up(conn: psycopg.Connection[Any], env: dict[str, str], log_path: Path) -> None:
    """From the executor's sweep: start the catch-up process when runs are pending and none
    runs yet (its own process keeps the MLflow client out of the app)."""
    global _running
    if tracking_uri() is None or (_running is not None and _running.poll() is None):
        return
    if not pending_runs(conn):
        return
    with open(log_path, "ab") as out:
        _running = subprocess.Popen(
            [sys.executable, "-m", "nf_auto_runner.tracking"], env=env, stdout=out,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip


def main() -> int:
    from nf_auto_runner import config
    from nf_auto_runner.db import connect

    uri = tracking_uri()
    if uri is None:
        print("MLFLOW_TRACKING_URI is not set: nothing to catch up", file=sys.stderr)
        return 2
    settings = config.load()
    with connect(
        settings.database_url, autocommit=True, application_name="nf_auto_runner-tracking"
    ) as conn:
        done, errors = catch_up(conn, uri)
    print(f"tracked runs {done or 'none'}; still pending: {'; '.join(errors) or 'none'}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
