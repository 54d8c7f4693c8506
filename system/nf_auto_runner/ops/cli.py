"""`python -m nf_auto_runner.ops <command>`: the runbook's routine operations as commands.

Every failure ends with one line on stderr saying what is wrong and what to do, and a
non-zero exit; results are printed (JSON where there is structure) on stdout.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["main"]

EXIT_FAILED = 1
EXIT_CONFIG = 2
EXIT_DATABASE = 3


#: --database: another database of the same server to work on (a scratch copy to restore into)
_DATABASE: str | None = None


def _settings() -> Any:
    import dataclasses
    from urllib.parse import urlsplit

    from nf_auto_runner import config

    settings = config.load()
    if _DATABASE is None:
        return settings
    url = urlsplit(settings.database_url)._replace(path=f"/{_DATABASE}").geturl()
    return dataclasses.replace(settings, database_url=url)


def _print(obj: Any) -> None:
    print(json.dumps(obj, indent=2, default=str))


def cmd_migrate(args: argparse.Namespace) -> int:
    from nf_auto_runner.migrate import migrate

    applied = migrate(_settings().database_url)
    print(f"migrations applied: {', '.join(applied)}" if applied else "schema up to date")
    return 0


def cmd_seed(args: argparse.Namespace) -> int:
    from nf_auto_runner.data import seed
    from nf_auto_runner.db import connect
    from nf_auto_runner.migrate import migrate

    settings = _settings()
    migrate(settings.database_url)
    with connect(settings.database_url) as conn:
        counts = seed(conn)
    _print({"series": counts})
    return 0


def cmd_backup(args: argparse.Namespace) -> int:
    from nf_auto_runner.ops.backup import backup

    print(backup(_settings()))
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    from nf_auto_runner.ops.backup import restore

    _print(restore(_settings(), Path(args.path) if args.path else None))
    return 0


def cmd_weekly(args: argparse.Namespace) -> int:
    from nf_auto_runner.ops.weekly import weekly_maintenance

    _print(weekly_maintenance(_settings()))
    return 0


def cmd_log_retention(args: argparse.Namespace) -> int:
    from nf_auto_runner.ops.weekly import log_retention

    _print(log_retention(_settings(), args.days))
    return 0


def cmd_archive(args: argparse.Namespace) -> int:
    from nf_auto_runner.ops.archive import archive

    _print(archive(_settings(), args.older_than_days, Path(args.out)))
    return 0


def cmd_maintenance(args: argparse.Namespace) -> int:
    from nf_auto_runner.app.maintenance import set_maintenance

    settings = _settings()
    set_maintenance(settings.maintenance_flag, args.state == "on", args.message)
    print(f"maintenance {args.state} ({settings.maintenance_flag})")
    return 0


def cmd_train_now(args: argparse.Namespace) -> int:
    """Insert the run already `running` (so no executor can claim it) and train it here."""
    from nf_auto_runner import runs
    from nf_auto_runner.db import connect
    from nf_auto_runner.executor import describe_exit

    settings = _settings()
    params = {"max_steps": args.max_steps} if args.max_steps else {}
    with connect(settings.database_url, autocommit=True) as conn:
        run = runs.create(
            conn,
            series_id=args.series_id,
            model_name=args.model,
            horizon=args.horizon,
            run_name=args.run_name,
            params=params,
            status="running",
        )
    t0 = time.monotonic()
    code = subprocess.call(
        [sys.executable, "-m", "nf_auto_runner.worker", str(run["run_id"])],
        env=settings.child_env(),
    )
    with connect(settings.database_url, autocommit=True) as conn:
        if code != 0:
            runs.fail_if_running(conn, run["run_id"], describe_exit(code))
        final = runs.get(conn, run["run_id"])
    assert final is not None
    _print({**final, "wall_seconds": round(time.monotonic() - t0, 2)})
    return 0 if final["status"] == "completed" else EXIT_FAILED


def _database_name(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,62}", value):
        raise argparse.ArgumentTypeError(f"{value!r} is not a plain database name")
    return value


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m nf_auto_runner.ops", description="Routine operations for nf_auto_runner."
    )
    p.add_argument(
        "--database",
        type=_database_name,
        help="work on this database of the same server instead (e.g. a scratch copy to "
        "restore a backup into)",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="command")

    def add(
        name: str, fn: Callable[[argparse.Namespace], int], help_: str
    ) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help_, description=help_)
        sp.set_defaults(fn=fn)
        return sp

    add("migrate", cmd_migrate, "apply pending schema migrations")
    add("seed", cmd_seed, "load the built-in series (idempotent)")
    add("backup", cmd_backup, "pg_dump -Fc | gzip to backups/full_<UTC>.dump.gz")
    sp = add("restore", cmd_restore, "restore a backup (newest by default)")
    sp.add_argument("path", nargs="?")
    add("weekly-maintenance", cmd_weekly, "VACUUM ANALYZE, reports, MV refresh, retention")
    sp = add("log-retention", cmd_log_retention, "delete logs older than --days")
    sp.add_argument("--days", type=int, default=90)
    sp = add("archive", cmd_archive, "export then delete finished runs older than a cutoff")
    sp.add_argument("--older-than-days", type=int, default=180)
    sp.add_argument("--out", required=True)
    sp = add("maintenance", cmd_maintenance, "switch maintenance mode on or off")
    sp.add_argument("state", choices=("on", "off"))
    sp.add_argument("message", nargs="?")
    sp = add("train-now", cmd_train_now, "train one run synchronously and wait for it")
    sp.add_argument("--series-id", default="airpassengers")
    sp.add_argument("--model", choices=("MLP", "NHITS"), default="MLP")
    sp.add_argument("--horizon", type=int, default=12)
    sp.add_argument("--run-name", default="train-now")
    sp.add_argument("--max-steps", type=int)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run one command; translate every expected failure into one line and an exit code."""
    import psycopg
    from nf_auto_runner.config import ConfigError
    from nf_auto_runner.db import DatabaseUnavailable
    from nf_auto_runner.ops.archive import ArchiveError
    from nf_auto_runner.ops.backup import BackupError

    global _DATABASE
    args = _parser().parse_args(argv)
    _DATABASE = args.database
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.fn(args))
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except DatabaseUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_DATABASE
    except psycopg.OperationalError as exc:
        print(
            f"error: database connection lost during {args.command}: "
            f"{str(exc).strip().splitlines()[0] if str(exc).strip() else exc!r}; "
            f"check PostgreSQL and retry",
            file=sys.stderr,
        )
        return EXIT_DATABASE
    except (BackupError, ArchiveError, OSError, psycopg.Error) as exc:
        print(f"error: {args.command} failed: {str(exc).strip().splitlines()[0]}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print(f"error: {args.command} interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug, but still one line: the details go to the log
        logging.getLogger("nf_auto_runner.ops").debug("unexpected failure", exc_info=True)
        print(
            f"error: {args.command} failed unexpectedly: {type(exc).__name__}: {exc}; "
            f"rerun with NF_OPS_DEBUG=1 for the traceback",
            file=sys.stderr,
        )
        if os.environ.get("NF_OPS_DEBUG"):
            raise
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
