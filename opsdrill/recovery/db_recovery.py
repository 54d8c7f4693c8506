"""Runbook §5.3.2, database recovery from the newest backup.

Newest `full_*.dump.gz`; a safety dump of the current database first (so the recovery itself
can be undone); stop the app; terminate sessions, drop and recreate the database; restore
(`gunzip | pg_restore`, as the superuser, so extensions and owners come back too); `ANALYZE`;
start the app; confirm `/health`. Every step is one line in the returned actions.
"""

from __future__ import annotations

import gzip
import shutil
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from opsdrill.errors import ServiceError
from opsdrill.probes.http import http_ok
from opsdrill.targets.local import LocalTarget

__all__ = ["newest_backup", "recover_database", "restore_into", "table_checksums"]

DATABASE = "ts_forecast_system"
OWNER = "nf_app"


def newest_backup(backups_dir: Path) -> Path:
    found = list(backups_dir.glob("full_*.dump.gz"))
    if not found:
        raise ServiceError(f"§5.3.2: no full_*.dump.gz in {backups_dir}; take a backup first")
    return max(found, key=lambda p: (p.stat().st_mtime, p.name))


def _dsn(target: LocalTarget, dbname: str) -> str:
    return make_conninfo(target.endpoints.admin_dsn or "", dbname=dbname)


def _safety_dump(target: LocalTarget, out: Path) -> Path:
    tmp = out.with_name(out.name + ".part")
    with open(tmp, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6) as gz:
        proc = subprocess.Popen(
            [str(target.cluster.bindir / "pg_dump"), "-Fc", "-d", _dsn(target, DATABASE)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        assert proc.stdout is not None and proc.stderr is not None
        shutil.copyfileobj(proc.stdout, gz)
        if proc.wait() != 0:
            tmp.unlink(missing_ok=True)
            raise ServiceError(f"§5.3.2: the safety dump failed: {proc.stderr.read().decode()}")
    tmp.replace(out)
    return out


def restore_into(target: LocalTarget, backup: Path, dbname: str) -> None:
    """Terminate sessions of `dbname`, drop and recreate it, `gunzip | pg_restore` into it."""
    with psycopg.connect(_dsn(target, "postgres"), autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (dbname,),
        )
        name = sql.Identifier(dbname)
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
        conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(name, sql.Identifier(OWNER)))
    with gzip.open(backup, "rb") as gz:
        proc = subprocess.Popen(
            [str(target.cluster.bindir / "pg_restore"), "--exit-on-error",
             "-d", _dsn(target, dbname)],
            stdin=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        assert proc.stdin is not None and proc.stderr is not None
        shutil.copyfileobj(gz, proc.stdin)
        proc.stdin.close()
        err = proc.stderr.read().decode(errors="replace")
        if proc.wait() != 0:
            raise ServiceError(f"§5.3.2: pg_restore of {backup} failed: {err.strip()[-300:]}")
    with psycopg.connect(_dsn(target, dbname), autocommit=True) as conn:
        conn.execute("ANALYZE")


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
    target: LocalTarget, backup: Path | None = None, health_polls: int = 30
) -> list[str]:
    """The whole §5.3.2 procedure; returns the actions, or ServiceError naming the failed step."""
    backups = target.endpoints.backups_dir or target.home / "backups"
    source = backup or newest_backup(backups)
    actions = [f"§5.3.2 newest backup: {source.name}"]
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    safety = _safety_dump(target, backups / f"pre_recovery_{stamp}.dump.gz")
    actions.append(f"safety dump of the current database: {safety.name}")
    api = target.service("api")
    api.stop(timeout=30)
    actions.append("app stopped")
    restore_into(target, source, DATABASE)
    actions.append(f"sessions terminated, {DATABASE} dropped, recreated, restored, ANALYZE done")
    api.start(timeout=120)
    health = f"{target.endpoints.api_url}/health"
    for attempt in range(1, health_polls + 1):
        if http_ok(health):
            actions.append(f"app started; /health answered 200 at poll {attempt}")
            return actions
        time.sleep(2.0)
    raise ServiceError(f"§5.3.2: restored, but {health} never answered 200")
