"""Runbook §5.3.2, database recovery from the newest backup.

Stop the app; terminate the database's sessions (as the superuser: the exporter's and an
operator's too); restore with the stack's own tool (`ops restore`, where the app runs:
newest `full_*.dump.gz`, a safety dump of the current database first so the recovery itself
can be undone, drop, recreate, `pg_restore`, `ANALYZE`); start the app; confirm `/health`.
Every step is one line in the returned actions.
"""

from __future__ import annotations

import json
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from opsdrill.drill.integrity import IntegritySnapshot, take_snapshot
from opsdrill.errors import ServiceError
from opsdrill.polling import poll
from opsdrill.probes.http import http_ok
from opsdrill.targets.base import Target

__all__ = ["backup_snapshot", "recover_database", "restore_into", "table_checksums"]

DATABASE = "ts_forecast_system"


def _restore(target: Target, backup: PurePosixPath | str | None, database: str) -> dict[str, Any]:
    """`ops restore [BACKUP]` into `database`; what it says it did, or ServiceError."""
    args = ["restore", *([str(backup)] if backup is not None else [])]
    done = target.ops(*args, database=None if database == DATABASE else database)
    if not done.ok:
        raise ServiceError(f"§5.3.2: ops {' '.join(args)} failed: {done.output(300)}")
    out = done.stdout
    try:
        return dict(json.loads(out[out.index("{") :]))
    except ValueError:
        raise ServiceError(f"§5.3.2: ops restore said something unexpected: {out[-300:]}") from None


def _terminate_sessions(target: Target, dbname: str) -> int:
    """Terminate every other session of `dbname`, as the superuser; how many."""
    with psycopg.connect(make_conninfo(target.admin_dsn, dbname="postgres"), autocommit=True) as c:
        row = c.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (dbname,),
        ).fetchone()
    return int(row[0]) if row else 0


def restore_into(target: Target, backup: PurePosixPath | str, dbname: str) -> None:
    """Restore `backup` into `dbname`, a scratch database (created empty first, owned by the
    app's role, since the app's restore connects to it before it drops and recreates it)."""
    owner = urlsplit(target.endpoints.dsn).username or "nf_app"
    with psycopg.connect(make_conninfo(target.admin_dsn, dbname="postgres"), autocommit=True) as c:
        name = sql.Identifier(dbname)
        c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
        c.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(name, sql.Identifier(owner)))
    _restore(target, backup, dbname)


def backup_snapshot(
    target: Target, backup: PurePosixPath | str, scratch: str = "opsdrill_recovery_point"
) -> IntegritySnapshot:
    """What `backup` holds, row by row: the recovery point a drill's integrity check judges
    a restore against (restored into `scratch`, snapshotted, dropped)."""
    restore_into(target, backup, scratch)
    try:
        return take_snapshot(make_conninfo(target.admin_dsn, dbname=scratch))
    finally:
        with psycopg.connect(
            make_conninfo(target.admin_dsn, dbname="postgres"), autocommit=True
        ) as c:
            c.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(scratch))
            )


def table_checksums(dsn: str, tables: list[str]) -> dict[str, str]:
    """md5 of each table's rows in primary-key order (row count included)."""
    out = {}
    with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as conn:
        for table in tables:
            row = conn.execute(
                sql.SQL(
                    "SELECT count(*) || ':' || coalesce(md5(string_agg(t::text, '|' "
                    "ORDER BY t::text)), '') FROM {} t"
                ).format(sql.Identifier(table))
            ).fetchone()
            out[table] = str(row[0]) if row else ""
    return out


def recover_database(
    target: Target, backup: PurePosixPath | str | None = None, health_polls: int = 30
) -> list[str]:
    """The whole §5.3.2 procedure; returns the actions, or ServiceError naming the failed step."""
    api = target.service("api")
    api.stop(timeout=30)
    actions = ["app stopped"]
    terminated = _terminate_sessions(target, DATABASE)
    actions.append(f"{terminated} session(s) of {DATABASE} terminated")
    try:
        done = _restore(target, backup, DATABASE)
    except Exception as exc:  # a bug too: the app is never left stopped behind it
        # a failed restore leaves no app down behind it: it starts again, on what there is
        try:
            api.start(timeout=120)
        except ServiceError as start:
            raise ServiceError(f"{exc}; the app did not start again either: {start}") from exc
        raise ServiceError(f"{exc}; the app was started again") from exc
    source, safety = PurePosixPath(done["restored_from"]), PurePosixPath(done["safety_dump"])
    actions.append(f"§5.3.2 newest backup: {source.name}")
    actions.append(f"safety dump of the current database: {safety.name}")
    actions.append(f"{DATABASE} dropped, recreated, restored from {source.name}, ANALYZE done")
    api.start(timeout=120)
    health = f"{target.endpoints.api_url}/health"
    asked = 0

    def healthy() -> bool | None:
        nonlocal asked
        asked += 1
        return http_ok(health) or None

    if poll(healthy, (health_polls - 1) * 2.0, interval=2.0) is None:
        raise ServiceError(f"§5.3.2: restored, but {health} never answered 200")
    actions.append(f"app started; /health answered 200 at poll {asked}")
    return actions
