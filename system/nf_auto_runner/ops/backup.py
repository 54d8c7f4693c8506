"""Backups and restores (runbook §5.3.2): `pg_dump -Fc | gzip` to `full_<UTC>.dump.gz`.

Restore takes a safety dump first, holds maintenance mode while the database is replaced,
and skips extension entries that only a superuser may create (they are re-created after,
best effort), so the app's own role can restore its own database.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import shutil
import subprocess
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from nf_auto_runner.app.maintenance import set_maintenance
from nf_auto_runner.config import Settings
from nf_auto_runner.db import connect
from nf_auto_runner.migrate import migrate
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

__all__ = ["BackupError", "backup", "newest_backup", "restore"]

CHUNK = 1 << 20


class BackupError(Exception):
    """A backup or restore step failed; the message names the step."""


def _pg_env(url: str) -> tuple[dict[str, str], dict[str, Any]]:
    """libpq environment (password out of argv) and the parsed connection parameters."""
    params = conninfo_to_dict(url)
    env = dict(os.environ)
    if params.get("password"):
        env["PGPASSWORD"] = str(params.pop("password"))
    return env, params


def _first_error(stderr: str) -> str:
    """The line of a libpq tool's stderr that says what went wrong."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    return next((line for line in lines if "error" in line.lower()), lines[0] if lines else "")


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise BackupError(f"{name} not found on PATH; install the PostgreSQL client tools")
    return path


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


def dump(settings: Settings, out: Path) -> Path:
    """pg_dump -Fc of the app database, gzip-compressed, written atomically to `out`."""
    env, params = _pg_env(settings.database_url)
    connect(settings.database_url).close()  # unreachable: one clear DatabaseUnavailable line
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    proc = subprocess.Popen(
        [_tool("pg_dump"), "-Fc", "-d", make_conninfo(**params)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert proc.stdout is not None and proc.stderr is not None
    try:
        with open(tmp, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6) as gz:
            while chunk := proc.stdout.read(CHUNK):
                gz.write(chunk)
        err = proc.stderr.read().decode(errors="replace").strip()
        if proc.wait() != 0:
            raise BackupError(f"pg_dump failed: {_first_error(err) or proc.returncode}")
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        tmp.replace(out)
    except BaseException:
        proc.kill()
        proc.wait()
        tmp.unlink(missing_ok=True)
        raise
    return out


def backup(settings: Settings) -> Path:
    """A full backup in the backups directory: backups/full_<UTC timestamp>.dump.gz."""
    return dump(settings, settings.backups_dir / f"full_{_stamp()}.dump.gz")


def newest_backup(settings: Settings) -> Path:
    found = sorted(settings.backups_dir.glob("full_*.dump.gz"))
    if not found:
        raise BackupError(
            f"no full_*.dump.gz backup in {settings.backups_dir}; run "
            f"`python -m nf_auto_runner.ops backup` first"
        )
    return max(found, key=lambda p: (p.stat().st_mtime, p.name))


def _restore_list(archive: Path, env: dict[str, str]) -> str:
    """pg_restore's table of contents without EXTENSION entries (superuser-only)."""
    done = subprocess.run(
        [_tool("pg_restore"), "-l", str(archive)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if done.returncode != 0:
        raise BackupError(
            f"backup {archive} is not a readable pg_dump archive: {_first_error(done.stderr)}"
        )
    return "\n".join(line for line in done.stdout.splitlines() if " EXTENSION " not in line)


def restore(settings: Settings, path: Path | None = None) -> dict[str, Any]:
    """Replace the database with a backup; returns what was done."""
    source = path or newest_backup(settings)
    if not source.exists():
        raise BackupError(f"backup {source} does not exist")
    env, params = _pg_env(settings.database_url)
    dbname = str(params.get("dbname"))
    with tempfile.TemporaryDirectory(prefix="nf_restore_") as tmpdir:
        archive = Path(tmpdir) / "restore.dump"
        try:
            with gzip.open(source, "rb") as gz, open(archive, "wb") as fh:
                shutil.copyfileobj(gz, fh, CHUNK)
        except (OSError, EOFError) as exc:
            raise BackupError(f"backup {source} is not a readable gzip file: {exc}") from exc
        listing = Path(tmpdir) / "restore.list"
        listing.write_text(_restore_list(archive, env))
        safety = dump(settings, settings.backups_dir / f"pre_restore_{_stamp()}.dump.gz")
        was_on = set_maintenance(
            settings.maintenance_flag, True, f"database restore from {source.name} in progress"
        )
        try:
            _recreate_database(settings.database_url, dbname, safety)
            done = subprocess.run(
                [
                    _tool("pg_restore"),
                    "--no-owner",
                    "--exit-on-error",
                    "-L",
                    str(listing),
                    "-d",
                    make_conninfo(**params),
                    str(archive),
                ],
                capture_output=True,
                text=True,
                env=env,
                check=False,
            )
            if done.returncode != 0:
                raise BackupError(
                    f"pg_restore failed (safety dump kept at {safety}): {_first_error(done.stderr)}"
                )
            with connect(settings.database_url, autocommit=True) as conn:
                with contextlib.suppress(Exception):  # superuser-only: best effort
                    conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
                conn.execute("ANALYZE")
            migrate(settings.database_url)  # a backup from an older release gets today's schema
        finally:
            if not was_on:
                set_maintenance(settings.maintenance_flag, False)
    return {"restored_from": str(source), "safety_dump": str(safety), "database": dbname}


def _recreate_database(url: str, dbname: str, safety: Path) -> None:
    """Terminate other sessions, drop and recreate the database (owned by our role).

    Superuser sessions cannot be terminated by the app's role; they are named instead of
    letting DROP fail with a bare permission error.
    """
    admin_url = make_conninfo(url, dbname="postgres")
    with connect(admin_url, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(a.pid) FROM pg_stat_activity a "
            "JOIN pg_roles r ON r.oid = a.usesysid WHERE a.datname = %s "
            "AND a.pid <> pg_backend_pid() AND NOT r.rolsuper",
            (dbname,),
        )
        try:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname))
            )
        except psycopg.Error as exc:
            pids = [
                r["pid"]
                for r in conn.execute(
                    "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> "
                    "pg_backend_pid()",
                    (dbname,),
                )
            ]
            raise BackupError(
                f"cannot drop {dbname}: {str(exc).strip().splitlines()[0]}; sessions still "
                f"connected: {pids or 'none'} (superuser sessions must be closed by their "
                f"owner); nothing was changed"
            ) from exc
        try:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
        except psycopg.Error as exc:
            raise BackupError(
                f"database {dbname} was dropped but could not be re-created "
                f"({str(exc).strip().splitlines()[0]}); create it and restore "
                f"the safety dump {safety}"
            ) from exc
