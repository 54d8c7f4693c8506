"""Schema migrations: `sql/NNN_*.sql` applied once each, in order, recorded in schema_migrations.

Two processes starting at once serialise on an advisory lock, so a file is never applied twice.
"""

from __future__ import annotations

import logging
from importlib import resources
from typing import Any

import psycopg
from nf_auto_runner.db import connect

__all__ = ["MIGRATION_LOCK", "migrate", "migration_files"]

log = logging.getLogger(__name__)

MIGRATION_LOCK = 0x6E66_6D69  # "nfmi": the advisory lock key for migrations


def migration_files() -> list[tuple[str, str]]:
    """(name, sql) for every migration shipped with the package, in order."""
    root = resources.files("nf_auto_runner").joinpath("sql")
    files = sorted((p for p in root.iterdir() if p.name.endswith(".sql")), key=lambda p: p.name)
    return [(p.name, p.read_text()) for p in files]


def migrate(database_url: str) -> list[str]:
    """Apply pending migrations; return the names applied (empty when up to date)."""
    applied: list[str] = []
    with connect(database_url, autocommit=True, application_name="nf_auto_runner-migrate") as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " name TEXT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
            )
            done = {r["name"] for r in conn.execute("SELECT name FROM schema_migrations")}
            for name, sql in migration_files():
                if name in done:
                    continue
                with conn.transaction():
                    conn.execute(sql)  # type: ignore[arg-type]
                    conn.execute("INSERT INTO schema_migrations (name) VALUES (%s)", (name,))
                applied.append(name)
                log.info("migration %s applied", name)
            _try_pg_stat_statements(conn)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))
    return applied


def _try_pg_stat_statements(conn: psycopg.Connection[Any]) -> None:
    """Create pg_stat_statements when the server offers it; its absence is not an error."""
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements') AS have,"
        " EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_stat_statements')"
        " AS avail"
    ).fetchone()
    if row is None or row["have"] or not row["avail"]:
        return
    try:
        with conn.transaction():
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    except psycopg.Error as exc:
        log.info(
            "pg_stat_statements not created (%s); slow-statement reports will be empty",
            str(exc).strip().splitlines()[0],
        )
