"""The run lifecycle in SQL: scheduled → running → completed | failed | cancelled.

Every transition out of `running` is conditional on the row still being `running`, so a
cancel, a worker's completion and the executor's failure verdict can race without one
overwriting another.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time
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
    "worker_state",
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


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of a process from /proc, or None when it is gone."""
    try:
        stat = open(f"/proc/{pid}/stat").read()  # noqa: SIM115 - one read
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # the command name may hold spaces
    return fields[0], int(fields[1])


def worker_state(pid: int, run_id: int) -> str:
    """What `pid` is to `run_id` now: "gone", "supervised", "orphaned" or "unknown".

    "gone" also covers a zombie. The executor gives each worker NF_SUPERVISOR_PID; a worker
    whose parent is no longer that process was re-parented when its app died: "orphaned",
    nobody will cancel or reap it. "unknown" when the pid runs something else (recycled) or
    /proc cannot be read (another user's process): not ours to judge or kill.
    """
    stat = _proc_stat(pid)
    if stat is None or stat[0] == "Z":
        return "gone"
    try:
        argv = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")  # noqa: SIM115
        environ = open(f"/proc/{pid}/environ", "rb").read().split(b"\0")  # noqa: SIM115
    except PermissionError:
        return "unknown"
    except OSError:
        return "gone"
    if b"nf_auto_runner.worker" not in argv or str(run_id).encode() not in argv:
        return "unknown"  # likely a recycled pid; the heartbeat age decides, never a kill
    supervisor = next(
        (e.split(b"=", 1)[1] for e in environ if e.startswith(b"NF_SUPERVISOR_PID=")), b""
    )
    if supervisor.isdigit():
        return "supervised" if stat[1] == int(supervisor) else "orphaned"
    try:  # a worker started before NF_SUPERVISOR_PID existed: is its parent an app?
        parent = open(f"/proc/{stat[1]}/cmdline", "rb").read()  # noqa: SIM115
    except OSError:
        return "orphaned"
    return "supervised" if b"nf_auto_runner" in parent else "orphaned"


def _kill_orphan(pid: int, timeout: float = 5.0) -> bool:
    """SIGKILL an orphaned worker and wait until it is gone (or a zombie); True if it went."""
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return True
    deadline = time.monotonic() + timeout
    while (stat := _proc_stat(pid)) is not None and stat[0] != "Z":
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True


def recover_orphans(
    conn: Conn, stale_seconds: float, *, check_pids: bool = True, exclude: set[int] | None = None
) -> list[int]:
    """Fail `running` runs whose worker is lost: same host and pid dead, worker orphaned by
    its app's death (killed first), or heartbeat stale.

    At start-up (check_pids=True) a worker on this host that outlived its app is killed: no
    executor supervises it any more, so it could neither be cancelled nor reaped, and it holds
    memory and a parallel slot the new process cannot see. The periodic sweep passes
    check_pids=False: a dead worker of another app process on this host is that executor's to
    report (it names the signal); only a stale heartbeat is ours.
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
        pid, here = r["worker_pid"], r["worker_host"] == HOST
        why = ""
        if check_pids and here and pid is not None:
            state = worker_state(pid, r["run_id"])
            if state == "gone":
                why = f"orphaned: worker lost at restart (pid {pid} on {HOST} is gone)"
            elif state == "orphaned":
                killed = "killed" if _kill_orphan(pid) else "SIGKILL sent, still exiting"
                why = (
                    f"orphaned: worker lost at restart (pid {pid} on {HOST} outlived the app "
                    f"that supervised it; {killed})"
                )
        if not why and float(r["age"]) > stale_seconds:
            why = f"orphaned: worker lost at restart (no heartbeat for {float(r['age']):.0f} s)"
        if why and fail_if_running(conn, r["run_id"], why):
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
