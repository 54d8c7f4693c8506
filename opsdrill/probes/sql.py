"""SQL probes."""

from __future__ import annotations

import psycopg

__all__ = ["sql_ok", "waiting_sessions"]


def sql_ok(conninfo: str, timeout: int = 1) -> bool:
    """True when `SELECT 1` succeeds over a fresh connection."""
    try:
        with psycopg.connect(conninfo, connect_timeout=timeout, autocommit=True) as conn:
            conn.execute("SELECT 1")
            return True
    except psycopg.Error:
        return False


def waiting_sessions(admin_dsn: str) -> dict[int, list[int]]:
    """The diagnosis step: each session waiting on a lock -> the pids blocking it."""
    with psycopg.connect(admin_dsn, autocommit=True, connect_timeout=5) as conn:
        rows = conn.execute(
            "SELECT pid, pg_blocking_pids(pid) FROM pg_stat_activity "
            "WHERE cardinality(pg_blocking_pids(pid)) > 0"
        ).fetchall()
    return {int(pid): [int(b) for b in blockers] for pid, blockers in rows}
