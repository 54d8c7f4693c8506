"""The run lifecycle in SQL: scheduled → running → completed | failed | cancelled.

Every transition out of `running` is conditional on the row still being `running`, so a
cancel, a worker's completion and the executor's failure verdict can race without one
overwriting another.
"""

from __future__ import annotations

import json
import os
import socket
from typing import Any

import psycopg

__all__ = [
    "FINISHED",
    "MODELS",
    "RUN_COLUMNS",
    "cancel",
    "claim_next",
    "create",
    "fail_if_running",
    "get",
    "list_runs",
    "log_row",
    "recover_orphans",
    "requeue",
]

MODELS = ("MLP", "NHITS")
FINISHED = ("completed", "failed", "cancelled")
RUN_COLUMNS = (
    "run_id, run_name, experiment_id, status, model_name, series_id, horizon, params, "
    "created_at, start_time, end_time, execution_duration_seconds, worker_host, worker_pid, "
    "heartbeat_at, error_message"
)
HOST = socket.gethostname()

Conn = psycopg.Connection[Any]


def create(
    conn: Conn,
    *,
    series_id: str,
    model_name: str,
    horizon: int,
    run_name: str | None,
    params: dict[str, Any],
    experiment: str = "default",
    status: str = "scheduled",
) -> dict[str, Any]:
    """Insert a run in the default experiment (created if missing)."""
    exp = conn.execute(
        "INSERT INTO experiments (experiment_name) VALUES (%s) ON CONFLICT (experiment_name) "
        "DO UPDATE SET experiment_name = EXCLUDED.experiment_name RETURNING experiment_id",
        (experiment,),
    ).fetchone()
    assert exp is not None
    running = status == "running"
    row = conn.execute(
        f"INSERT INTO runs (run_name, experiment_id, status, model_name, series_id, horizon, "
        f"params, start_time, worker_host, worker_pid, heartbeat_at) VALUES "
        f"(%s, %s, %s, %s, %s, %s, %s, CASE WHEN %s THEN now() END, %s, %s, "
        f"CASE WHEN %s THEN now() END) RETURNING {RUN_COLUMNS}",
        (
            run_name,
            exp["experiment_id"],
            status,
            model_name,
            series_id,
            horizon,
            json.dumps(params),
            running,
            HOST if running else None,
            os.getpid() if running else None,
            running,
        ),
    ).fetchone()
    assert row is not None
    return row


def get(conn: Conn, run_id: int) -> dict[str, Any] | None:
    return conn.execute(f"SELECT {RUN_COLUMNS} FROM runs WHERE run_id = %s", (run_id,)).fetchone()


def list_runs(conn: Conn, status: str | None, limit: int) -> list[dict[str, Any]]:
    if status is None:
        return conn.execute(
            f"SELECT {RUN_COLUMNS} FROM runs ORDER BY run_id DESC LIMIT %s", (limit,)
        ).fetchall()
    return conn.execute(
        f"SELECT {RUN_COLUMNS} FROM runs WHERE status = %s ORDER BY run_id DESC LIMIT %s",
        (status, limit),
    ).fetchall()


def cancel(conn: Conn, run_id: int, reason: str | None = None) -> dict[str, Any] | None:
    """Cancel a scheduled or running run; None if it had already finished.

    The reason (runbook §5.2.3: "cancelled to free memory") becomes the run's error_message,
    so whoever reads the run later knows why it stopped.
    """
    message = f"cancelled: {reason}"[:4000] if reason else "cancelled by request"
    return conn.execute(
        f"UPDATE runs SET status = 'cancelled', end_time = now(), "
        f"execution_duration_seconds = EXTRACT(EPOCH FROM now() - start_time), "
        f"error_message = %s "
        f"WHERE run_id = %s AND status IN ('scheduled', 'running') RETURNING {RUN_COLUMNS}",
        (message, run_id),
    ).fetchone()


def claim_next(conn: Conn, pid: int) -> dict[str, Any] | None:
    """Atomically take the oldest scheduled run; SKIP LOCKED keeps claimers from colliding."""
    return conn.execute(
        f"UPDATE runs SET status = 'running', start_time = now(), heartbeat_at = now(), "
        f"worker_host = %s, worker_pid = %s, error_message = NULL "
        f"WHERE run_id = (SELECT run_id FROM runs WHERE status = 'scheduled' "
        f"ORDER BY created_at, run_id FOR UPDATE SKIP LOCKED LIMIT 1) RETURNING {RUN_COLUMNS}",
        (HOST, pid),
    ).fetchone()


def fail_if_running(conn: Conn, run_id: int, message: str) -> bool:
    """Mark a running run failed; False if it had already left `running`."""
    row = conn.execute(
        "UPDATE runs SET status = 'failed', end_time = now(), error_message = %s, "
        "execution_duration_seconds = EXTRACT(EPOCH FROM now() - start_time) "
        "WHERE run_id = %s AND status = 'running' RETURNING run_id",
        (message[:4000], run_id),
    ).fetchone()
    return row is not None


def requeue(conn: Conn, run_id: int, message: str) -> bool:
    """Put a running run back in the queue (graceful shutdown): nothing is lost."""
    row = conn.execute(
        "UPDATE runs SET status = 'scheduled', start_time = NULL, worker_host = NULL, "
        "worker_pid = NULL, heartbeat_at = NULL, error_message = %s "
        "WHERE run_id = %s AND status = 'running' RETURNING run_id",
        (message, run_id),
    ).fetchone()
    return row is not None


def log_row(
    conn: Conn,
    level: str,
    message: str,
    *,
    run_id: int | None = None,
    exception_type: str | None = None,
    logger: str = "nf_auto_runner",
) -> None:
    """A system_logs row written in the caller's transaction (not via the async handler)."""
    conn.execute(
        "INSERT INTO system_logs (log_level, log_message, run_id, exception_type, logger) "
        "VALUES (%s, %s, %s, %s, %s)",
        (level, message[:4000], run_id, exception_type, logger),
    )


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def recover_orphans(
    conn: Conn, stale_seconds: float, *, check_pids: bool = True, exclude: set[int] | None = None
) -> list[int]:
    """Fail `running` runs whose worker is gone: same host and pid dead, or heartbeat stale.

    The periodic sweep passes check_pids=False: a dead worker of another app process on this
    host is that executor's to report (it names the signal); only a stale heartbeat is ours.
    """
    exclude = exclude or set()
    rows = conn.execute(
        "SELECT run_id, worker_host, worker_pid, "
        "EXTRACT(EPOCH FROM now() - COALESCE(heartbeat_at, start_time, created_at)) AS age "
        "FROM runs WHERE status = 'running'"
    ).fetchall()
    lost = []
    for r in rows:
        if r["run_id"] in exclude:
            continue
        dead = (
            check_pids
            and r["worker_host"] == HOST
            and r["worker_pid"] is not None
            and not _pid_alive(r["worker_pid"])
        )
        if dead or float(r["age"]) > stale_seconds:
            why = (
                f"orphaned: worker lost at restart (pid {r['worker_pid']} on "
                f"{r['worker_host']} is gone)"
                if dead
                else f"orphaned: worker lost at restart (no heartbeat for {float(r['age']):.0f} s)"
            )
            if fail_if_running(conn, r["run_id"], why):
                log_row(
                    conn,
                    "ERROR",
                    f"run {r['run_id']} {why}",
                    run_id=r["run_id"],
                    exception_type="WorkerLost",
                    logger="nf_auto_runner.executor",
                )
                lost.append(r["run_id"])
    return lost
