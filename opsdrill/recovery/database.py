"""Runbook §5.2.2 (database connection errors) and §5.3.2 (database recovery) as procedures.

Each builder returns a `Procedure` (runbook id, title, steps) over the Target interface; a
drill names one as its `recover`, and its steps are timed on the drill's timeline.
"""

from __future__ import annotations

from opsdrill.drill.procedure import Procedure, procedure
from opsdrill.probes.sql import sql_ok, waiting_sessions
from opsdrill.recovery.blocking_sessions import terminate_blockers
from opsdrill.recovery.db_recovery import recover_database
from opsdrill.recovery.idle_sessions import connections_by_state, terminate_idle
from opsdrill.recovery.services import confirm_health
from opsdrill.targets.base import Target

__all__ = [
    "db_status",
    "diagnose_database",
    "restore_database",
    "start_postgres",
    "terminate_blocking_session",
    "terminate_idle_sessions",
]


def db_status(target: Target) -> str:
    db = target.service("db")
    works = "works" if sql_ok(target.endpoints.dsn) else "fails"
    return f"PostgreSQL running={db.is_running()} (pid {db.pid() or 'none'}); SELECT 1 {works}"


def start_postgres(target: Target, confirm_timeout: float = 60.0) -> Procedure:
    """§5.2.2 fix 1, for "PostgreSQL is not running" (the postmaster was killed)."""
    db = target.service("db")

    def start() -> str:
        db.start(timeout=120)
        return f"PostgreSQL started (pid {db.pid()})"

    return procedure(
        "5.2.2",
        "fix 1: start PostgreSQL",
        ("diagnose: is PostgreSQL up, SELECT 1", lambda: db_status(target)),
        ("start PostgreSQL", start),
        ("confirm /health", confirm_health(target, confirm_timeout)),
    )


def diagnose_database(target: Target) -> Procedure:
    """§5.2.2 diagnosis only: for a restart the database is back by itself; nothing to fix
    unless the diagnosis finds PostgreSQL down or the pool exhausted. The DSN is read when
    the step runs: a restarted database container may be published on a new port."""

    def admin() -> str:
        return target.endpoints.admin_dsn or target.endpoints.dsn

    return procedure(
        "5.2.2",
        "diagnose: database connection errors",
        ("is PostgreSQL up, SELECT 1", lambda: db_status(target)),
        ("connections by state (pg_stat_activity)",
         lambda: f"client sessions by state {connections_by_state(admin())}"),
        ("confirm /health", confirm_health(target)),
    )  # fmt: skip


def terminate_idle_sessions(target: Target, idle_for: float = 3600.0) -> Procedure:
    """§5.2.2 fix 2: the pool is exhausted by idle sessions."""
    admin = target.endpoints.admin_dsn or ""
    return procedure(
        "5.2.2",
        "fix 2: terminate idle sessions",
        ("diagnose: connections by state",
         lambda: f"client sessions by state {connections_by_state(admin)}"),
        (f"terminate sessions idle for more than {idle_for:g} s",
         lambda: terminate_idle(admin, idle_for=idle_for)),
        ("confirm /health", confirm_health(target)),
    )  # fmt: skip


def terminate_blocking_session(target: Target) -> Procedure:
    """§5.2.2 fix 3: lock contention; the session at the head of the queue is terminated."""
    admin = target.endpoints.admin_dsn or ""
    return procedure(
        "5.2.2",
        "fix 3: terminate the blocking session",
        ("diagnose: sessions waiting on locks",
         lambda: f"waiting session -> blockers: {waiting_sessions(admin)}"),
        ("terminate the blocking session", lambda: terminate_blockers(admin)),
        ("confirm /health", confirm_health(target)),
    )  # fmt: skip


def restore_database(target: Target) -> Procedure:
    """§5.3.2 database recovery from the newest backup, a safety dump first."""
    return procedure(
        "5.3.2",
        "database recovery",
        ("newest backup, safety dump, stop app, recreate, restore, ANALYZE, start, /health",
         lambda: recover_database(target)),
    )  # fmt: skip
