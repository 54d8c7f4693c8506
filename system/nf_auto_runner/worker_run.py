"""The body of a training worker: load, train, record, heartbeat.

Results are written only while the run is still `running` in the database; a run cancelled
meanwhile stays cancelled, and the heartbeat thread ends the process when it notices.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any, TypeVar

import psycopg
from nf_auto_runner import config, runs, tracking
from nf_auto_runner.data import load_series
from nf_auto_runner.db import DatabaseUnavailable, connect
from nf_auto_runner.logs import setup_logging

__all__ = ["HEARTBEAT_SECONDS", "run"]

log = logging.getLogger("nf_auto_runner.worker")

HEARTBEAT_SECONDS = 2.0
EXIT_NOT_RUNNING = 3  # the run left `running` (cancelled, failed) while we trained
RECORD_RETRY_SECONDS = 30.0
T = TypeVar("T")


def _heartbeat(url: str, run_id: int, stop: threading.Event) -> None:
    """Every 2 s: heartbeat_at = now(); if the run is no longer ours, exit the process."""
    conn: psycopg.Connection[Any] | None = None
    while not stop.wait(HEARTBEAT_SECONDS):
        try:
            if conn is None or conn.closed:
                conn = connect(url, autocommit=True, application_name="nf_auto_runner-worker")
            row = conn.execute(
                "UPDATE runs SET heartbeat_at = now(), worker_pid = %s WHERE run_id = %s "
                "AND status = 'running' RETURNING run_id",
                (os.getpid(), run_id),
            ).fetchone()
        except Exception:
            conn = None
            continue  # the database may be down for a moment; keep training
        if row is None and not stop.is_set():
            log.warning("run %s is no longer running (cancelled?); worker exits", run_id)
            os._exit(EXIT_NOT_RUNNING)


def lower_priority() -> int:
    """Training is batch work beside a latency SLO: the worker yields the CPU to the API
    (`NF_WORKER_NICE`, default 10; 0 keeps the app's priority). Returns the niceness."""
    step = int(os.environ.get("NF_WORKER_NICE", "10"))
    try:
        return os.nice(step) if step > 0 else os.nice(0)
    except OSError:  # not permitted here: train at the inherited priority
        return os.nice(0)


def run(run_id: int) -> int:
    """Train run_id; 0 when completed, 1 when failed, 3 when the run was taken away."""
    lower_priority()
    settings = config.load()
    handler = setup_logging(settings)
    t_start = time.perf_counter()
    with connect(
        settings.database_url, autocommit=True, application_name="nf_auto_runner-worker"
    ) as conn:
        row = conn.execute(
            "UPDATE runs SET worker_pid = %s, worker_host = %s, heartbeat_at = now() "
            "WHERE run_id = %s AND status = 'running' RETURNING *",
            (os.getpid(), runs.HOST, run_id),
        ).fetchone()
        if row is None:
            log.warning("run %s is not running; nothing to do", run_id)
            return EXIT_NOT_RUNNING
        stop = threading.Event()
        beat = threading.Thread(
            target=_heartbeat, args=(settings.database_url, run_id, stop), daemon=True
        )
        beat.start()
        try:
            code = _train_and_record(conn, settings, row, t_start)
        except BaseException as exc:
            code = _record_failure(settings.database_url, conn, run_id, exc)
        finally:
            stop.set()
            if handler is not None:
                handler.flush()
        if code == 0:  # after the heartbeat stopped: the run is no longer `running`
            tracking.track_or_defer(conn, run_id)  # never raises: MLflow down leaves it pending
    return code


def _train_and_record(
    conn: psycopg.Connection[Any], settings: config.Settings, row: dict[str, Any], t_start: float
) -> int:
    run_id = row["run_id"]
    params = row["params"] if isinstance(row["params"], dict) else json.loads(row["params"])
    series = load_series(conn, row["series_id"])
    if series is None:
        raise LookupError(f"series {row['series_id']!r} not found")
    freq, points = series
    if len(points) < 3 * row["horizon"]:  # before the slow imports: fail fast
        raise ValueError(
            f"series {row['series_id']!r} has {len(points)} points, too short "
            f"for horizon {row['horizon']} (need {3 * row['horizon']})"
        )
    max_steps = int(params.get("max_steps") or settings.train_max_steps)
    from nf_auto_runner.trainer import train

    log.info(
        "run %s: training %s on %s (h=%s, %d points, %d steps)",
        run_id,
        row["model_name"],
        row["series_id"],
        row["horizon"],
        len(points),
        max_steps,
    )
    result = train(
        model_name=row["model_name"],
        freq=freq,
        points=points,
        h=row["horizon"],
        max_steps=max_steps,
        out_dir=settings.models_dir / str(run_id),
        gpu_memory_limit=settings.gpu_memory_limit,
        parallel_runs=settings.max_parallel_runs,
    )

    # 'pending' until MLflow has the run (nf_auto_runner.tracking); None: no MLflow configured
    tracking_status = "pending" if tracking.tracking_uri() else None

    def record(c: psycopg.Connection[Any]) -> bool:
        with c.transaction():
            done = c.execute(
                "UPDATE runs SET status = 'completed', end_time = now(), heartbeat_at = now(), "
                "execution_duration_seconds = EXTRACT(EPOCH FROM now() - start_time), "
                "tracking_status = %s WHERE run_id = %s AND status = 'running' RETURNING run_id",
                (tracking_status, run_id),
            ).fetchone()
            if done is None:
                return False
            c.execute(
                "INSERT INTO models (run_id, model_name, series_id, horizon, path, "
                "training_duration_seconds, model_size_bytes) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (
                    run_id,
                    row["model_name"],
                    row["series_id"],
                    row["horizon"],
                    str(result.path),
                    result.training_seconds,
                    result.size_bytes,
                ),
            )
            with c.cursor() as cur:
                cur.executemany(
                    "INSERT INTO metrics (run_id, name, value) VALUES (%s, %s, %s)",
                    [(run_id, k, v) for k, v in result.metrics.items()],
                )
        return True

    if not _write_with_retry(settings.database_url, conn, record):
        log.warning("run %s left running while training; result discarded", run_id)
        return EXIT_NOT_RUNNING
    log.info(
        "run %s completed in %.1f s (fit %.1f s, mae %.3f, %d bytes)",
        run_id,
        time.perf_counter() - t_start,
        result.training_seconds,
        result.metrics["mae"],
        result.size_bytes,
    )
    return 0


def _write_with_retry(
    url: str, conn: psycopg.Connection[Any] | None, write: Callable[[psycopg.Connection[Any]], T]
) -> T:
    """Run `write`, reconnecting through a database restart for up to RECORD_RETRY_SECONDS:
    a model that took minutes to train is not thrown away for a blip."""
    deadline = time.monotonic() + RECORD_RETRY_SECONDS
    while True:
        try:
            if conn is None or conn.closed:
                conn = connect(url, autocommit=True, application_name="nf_auto_runner-worker")
            return write(conn)
        except (psycopg.OperationalError, DatabaseUnavailable):
            if time.monotonic() > deadline:
                raise
            conn = None
            time.sleep(0.5)


def _record_failure(
    url: str, conn: psycopg.Connection[Any], run_id: int, exc: BaseException
) -> int:
    kind = type(exc).__name__
    message = f"{kind}: {exc}".strip()
    log.error(
        "run %s failed: %s\n%s",
        run_id,
        message,
        traceback.format_exc(),
        extra={"run_id": run_id, "exception_type": kind, "skip_db": True},
    )

    def record(c: psycopg.Connection[Any]) -> None:
        with c.transaction():
            if not runs.fail_if_running(c, run_id, message):
                return  # cancelled (its SIGTERM is what raised here) or already failed
            runs.log_row(
                c,
                "ERROR",
                f"run {run_id} failed: {message}",
                run_id=run_id,
                exception_type=kind,
                logger="nf_auto_runner.worker",
            )

    try:
        _write_with_retry(url, conn, record)
    except (psycopg.Error, DatabaseUnavailable):
        log.exception("could not record the failure of run %s", run_id)
    return 1
