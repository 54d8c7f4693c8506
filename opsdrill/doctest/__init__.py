"""`opsdrill doctest`: every SQL statement of a Markdown runbook, checked against the live schema.

    extract.py    Markdown -> statements (sql fences, psql -c, psql here-documents)
    classify.py   read / write / non-transactional / cluster-wide / side effect
    validate.py   run with no lasting effect (rolled back, PREPAREd, or on a scratch clone)
    hints.py      what to do about a broken statement
    report.py     the table and the JSON

A runbook's SQL rots silently when the schema or PostgreSQL changes; the doctest makes the
rot a failing exit code, and it is safe to point at production: there nothing that writes,
locks or runs outside a transaction is executed.
"""

from __future__ import annotations

from pathlib import Path

from opsdrill.doctest.extract import Statement, extract, extract_file
from opsdrill.doctest.report import Report
from opsdrill.doctest.validate import Database, Validator, describe_dsn
from opsdrill.errors import TargetUnreachable, UsageError
from opsdrill.targets.base import Target

__all__ = [
    "Database",
    "Report",
    "Statement",
    "check_path",
    "database_for_dsn",
    "database_for_target",
    "doctest",
    "extract",
    "extract_file",
]


def database_for_target(target: Target) -> Database:
    """The database of a target, as its application role; production if the target says so."""
    endpoints = target.endpoints
    db_service = target.services.get("db")
    if db_service is not None and not db_service.is_running():
        how = (
            f"start it with 'opsdrill up --target {target.spec}'"
            if target.state_home() is not None
            else "start it with the deployment's own tooling"
        )
        raise TargetUnreachable(f"the database of target {target.name!r} is not running: {how}")
    label = f"{target.name} ({describe_dsn(endpoints.dsn)})"
    return Database(endpoints.dsn, target.production, label)


def database_for_dsn(dsn: str, *, sandbox: bool = False) -> Database:
    """Any database by DSN: production unless the caller vouches it is a sandbox."""
    return Database(dsn, not sandbox, describe_dsn(dsn))


def check_path(path: Path) -> Path:
    """The runbook's path, or a usage error before anything connects anywhere."""
    if not path.is_file():
        raise UsageError(f"runbook {str(path)!r} does not exist: give the path of a Markdown file")
    return path


def doctest(path: Path, db: Database, **timeouts: str) -> Report:
    """Extract, validate and report one runbook."""
    check_path(path)
    statements = extract_file(path)
    results = Validator(db, **timeouts).validate(statements)
    return Report(path, db.label, db.production, results)
