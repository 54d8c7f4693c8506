"""Runbook §5.2.2 fix 3: find the session that blocks the others, and terminate it.

`pg_blocking_pids()` names, for each waiting session, who holds what it waits for; the
blockers that are not themselves waiting are the root of the queue, and only they are ended.
"""

from __future__ import annotations

import psycopg

from opsdrill.probes.sql import waiting_sessions

__all__ = ["blocking_pids", "terminate_blockers"]


def blocking_pids(admin_dsn: str) -> list[int]:
    """Blockers at the head of each queue: they block others and wait for nobody."""
    waits = waiting_sessions(admin_dsn)
    return sorted({b for blockers in waits.values() for b in blockers if b not in waits})


def terminate_blockers(admin_dsn: str) -> list[str]:
    """Terminate the head blockers; say who they were and how many sessions they held up."""
    waits = waiting_sessions(admin_dsn)
    heads = sorted({b for blockers in waits.values() for b in blockers if b not in waits})
    if not heads:
        return ["§5.2.2 fix 3: no session is waiting on a lock; nothing terminated"]
    with psycopg.connect(admin_dsn, autocommit=True, connect_timeout=5) as conn:
        rows = conn.execute(
            "SELECT pid, application_name, state, left(query, 60), pg_terminate_backend(pid) "
            "FROM pg_stat_activity WHERE pid = ANY(%s)",
            (heads,),
        ).fetchall()
    return [
        f"§5.2.2 fix 3: terminated blocking session pid {pid} ({app or 'no name'}, {state}, "
        f"last statement {query!r}) that held up {len(waits)} waiting session(s)"
        for pid, app, state, query, _ in rows
    ]
