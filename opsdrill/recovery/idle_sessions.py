"""Runbook §5.2.2 fix 2: the pool is exhausted, so terminate sessions idle for too long.

The runbook says "idle for more than an hour"; drills pass seconds, as the embedded stack
shortens alert `for:` durations. Only client sessions of the app's database, never our own.
"""

from __future__ import annotations

import psycopg

__all__ = ["connections_by_state", "terminate_idle"]


def connections_by_state(admin_dsn: str) -> dict[str, int]:
    """The diagnosis step: client sessions per state, from pg_stat_activity."""
    with psycopg.connect(admin_dsn, autocommit=True, connect_timeout=5) as conn:
        rows = conn.execute(
            "SELECT coalesce(state, 'unknown'), count(*) FROM pg_stat_activity "
            "WHERE backend_type = 'client backend' GROUP BY 1"
        ).fetchall()
    return {str(state): int(n) for state, n in rows}


def terminate_idle(
    admin_dsn: str, idle_for: float = 3600.0, database: str = "ts_forecast_system"
) -> list[str]:
    """pg_terminate_backend every session idle longer than `idle_for` seconds."""
    with psycopg.connect(admin_dsn, autocommit=True, connect_timeout=5) as conn:
        rows = conn.execute(
            "SELECT pid, application_name, pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE backend_type = 'client backend' AND datname = %s AND state = 'idle' "
            "AND state_change < now() - make_interval(secs => %s) AND pid <> pg_backend_pid()",
            (database, idle_for),
        ).fetchall()
    apps = sorted({str(app) or "(no name)" for _, app, _ in rows})
    return [
        f"§5.2.2 fix 2: terminated {sum(1 for *_, ok in rows if ok)} session(s) idle for more "
        f"than {idle_for:g} s ({', '.join(apps) or 'none'})"
    ]
