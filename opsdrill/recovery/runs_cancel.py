"""Runbook §5.2.3 fix 2: too many parallel runs, so mark the newest running runs cancelled.

The runbook's note holds: a `cancelled` row only frees memory if the worker notices and stops,
which the app's executor does (it kills a worker whose run is no longer `running`).
"""

from __future__ import annotations

import psycopg

__all__ = ["cancel_newest_running", "running_runs"]


def running_runs(dsn: str) -> list[tuple[int, str]]:
    """The diagnosis step: (run_id, run_name) of every running run, newest first."""
    with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as conn:
        rows = conn.execute(
            "SELECT run_id, coalesce(run_name, '') FROM runs WHERE status = 'running' "
            "ORDER BY start_time DESC NULLS LAST"
        ).fetchall()
    return [(int(r), str(n)) for r, n in rows]


def cancel_newest_running(dsn: str, count: int = 5, reason: str = "") -> list[int]:
    """Mark the `count` newest running runs cancelled with an end time; their ids."""
    with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as conn:
        rows = conn.execute(
            "UPDATE runs SET status = 'cancelled', end_time = now(), error_message = %s "
            "WHERE run_id IN (SELECT run_id FROM runs WHERE status = 'running' "
            "ORDER BY start_time DESC NULLS LAST LIMIT %s) AND status = 'running' "
            "RETURNING run_id",
            (reason or "cancelled by runbook §5.2.3 fix 2 (out of memory)", count),
        ).fetchall()
    return sorted(int(r) for (r,) in rows)
