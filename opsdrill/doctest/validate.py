"""Run each statement against the live schema with no lasting effect, and judge it.

Per block (one fence, one `psql -c`, one here-document) the validator opens a transaction
(READ ONLY on production), sets a short statement_timeout and lock_timeout so it never waits
behind production locks, runs each statement under a savepoint, and rolls everything back.
Statements a rollback cannot undo are only PREPAREd (parsed and analysed against the schema,
never executed); statements that cannot run in a transaction run on a scratch clone of the
database, dropped afterwards. On production nothing that writes is ever executed.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from opsdrill.doctest.classify import Kind, classify, strip_comments
from opsdrill.doctest.extract import Statement
from opsdrill.doctest.hints import Catalog, hint_for
from opsdrill.errors import MissingDependency, TargetUnreachable
from opsdrill.targets.postgres import find_bindir

__all__ = ["Database", "Result", "Validator", "describe_dsn"]

OK, BROKEN, SKIPPED = "ok", "broken", "skipped"
TIMEOUT_STATES = {"57014", "55P03"}  # query_canceled, lock_not_available


@dataclass(frozen=True)
class Database:
    """Where to validate, and whether it is production (then nothing that writes runs)."""

    dsn: str
    production: bool
    label: str


@dataclass
class Result:
    """The verdict on one statement."""

    id: str
    statement: Statement
    kind: Kind
    method: str  # how it was validated: executed+rolled back, prepared, scratch clone, not run
    verdict: str  # ok | broken | skipped
    reason: str | None = None  # why skipped, or the classification's note
    sqlstate: str | None = None
    error: str | None = None
    hint: str | None = None


def describe_dsn(dsn: str) -> str:
    """host:port/dbname of a DSN, without the user's password."""
    try:
        parts = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "(unparsable DSN)"
    host = str(parts.get("host") or "localhost")
    return f"{host}:{parts.get('port') or 5432}/{parts.get('dbname') or '?'}"


class Validator:
    """Validates statements against one database; see the module docstring."""

    def __init__(
        self, db: Database, *, statement_timeout: str = "10s", lock_timeout: str = "1s"
    ) -> None:
        self.db = db
        self.statement_timeout = statement_timeout
        self.lock_timeout = lock_timeout
        self._scratch: _Scratch | None = None
        self._catalog = Catalog()
        self._prepared = 0

    def validate(self, statements: list[Statement]) -> list[Result]:
        """A result per statement, in order."""
        try:
            conn = psycopg.connect(self.db.dsn, autocommit=True, connect_timeout=5)
        except psycopg.OperationalError as exc:
            first = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
            raise TargetUnreachable(
                f"cannot connect to the database {self.db.label} ({first}): "
                "start it (opsdrill up) or pass a reachable --target/--dsn"
            ) from exc
        results: list[Result] = []
        try:
            with conn:
                self._catalog = Catalog.load(conn)
                for block in _blocks(statements):
                    results += self._block(conn, block, start=len(results))
        finally:
            if self._scratch is not None:
                self._scratch.drop()
        return results

    # -- one block, one transaction ---------------------------------------------------------
    def _block(self, conn: psycopg.Connection, block: list[Statement], start: int) -> list:
        out = []
        conn.execute("BEGIN READ ONLY" if self.db.production else "BEGIN")
        try:
            conn.execute(f"SET LOCAL statement_timeout = '{self.statement_timeout}'")
            conn.execute(f"SET LOCAL lock_timeout = '{self.lock_timeout}'")
            for n, stmt in enumerate(block, start + 1):
                out.append(self._one(conn, f"S{n}", stmt))
        finally:
            conn.execute("ROLLBACK")
        return out

    def _one(self, conn: psycopg.Connection, sid: str, stmt: Statement) -> Result:
        cls = classify(stmt.sql)
        result = Result(sid, stmt, cls.kind, "not run", OK, cls.reason)
        if stmt.skip_reason:
            return self._skip(result, stmt.skip_reason)
        if cls.kind is Kind.TXN_CONTROL:
            result.reason = "transaction control: the doctest owns the transaction"
            return result
        if cls.kind is Kind.CLUSTER:
            return self._skip(result, f"cluster-wide ({cls.reason}): never run by the doctest")
        if cls.kind is Kind.NONTXN:
            if self.db.production:
                return self._skip(result, f"{cls.reason}: would run outside a transaction on "
                                  "production")  # fmt: skip
            return self._on_scratch(result)
        must_not_run = cls.kind is Kind.SIDE_EFFECT or (
            cls.kind is Kind.WRITE and self.db.production
        )
        if must_not_run:
            if not cls.preparable:
                why = "would write on production" if cls.kind is Kind.WRITE else cls.reason
                return self._skip(result, why)
            result.method = "prepared (parsed and analysed, not run)"
            return self._guarded(conn, result, f"PREPARE {self._next_name()} AS {_bare(stmt.sql)}")
        result.method = "run in a transaction, rolled back"
        return self._guarded(conn, result, stmt.sql)

    def _guarded(self, conn: psycopg.Connection, result: Result, sql: str) -> Result:
        """Run `sql` under a savepoint, so one broken statement doesn't abort the block."""
        conn.execute("SAVEPOINT doctest")
        try:
            _execute(conn, sql)
            if sql.startswith("PREPARE "):
                conn.execute(f"DEALLOCATE {sql.split()[1]}")
        except psycopg.Error as exc:
            conn.execute("ROLLBACK TO SAVEPOINT doctest")
            return self._judge(result, exc)
        conn.execute("RELEASE SAVEPOINT doctest")
        return result

    def _on_scratch(self, result: Result) -> Result:
        result.method = "run on a scratch clone of the database"
        try:
            scratch = self._scratch_db()
            with scratch.connection() as conn:
                _execute(conn, result.statement.sql)
        except _ScratchUnavailable as exc:
            return self._skip(result, f"no scratch clone: {exc}")
        except psycopg.Error as exc:
            return self._judge(result, exc)
        return result

    def _scratch_db(self) -> _Scratch:
        if self._scratch is None:
            self._scratch = _Scratch(self.db.dsn, self.statement_timeout, self.lock_timeout)
            self._scratch.create()
        return self._scratch

    def _judge(self, result: Result, exc: psycopg.Error) -> Result:
        diag = exc.diag
        message = diag.message_primary or str(exc).strip().splitlines()[0]
        if exc.sqlstate in TIMEOUT_STATES:
            return self._skip(result, f"not judged: {message} (timeouts: statement "
                              f"{self.statement_timeout}, lock {self.lock_timeout})")  # fmt: skip
        if exc.sqlstate == "25006":  # read_only_sql_transaction: the READ ONLY net caught a write
            return self._skip(result, "would write on production (stopped by READ ONLY)")
        result.verdict = BROKEN
        result.sqlstate = exc.sqlstate
        result.error = message + (f" ({diag.message_detail})" if diag.message_detail else "")
        result.hint = hint_for(
            exc.sqlstate, message, diag.message_hint, result.statement.sql, self._catalog
        )
        if result.hint is None and result.statement.notes:
            result.hint = "placeholders were used: " + "; ".join(result.statement.notes)
        return result

    @staticmethod
    def _skip(result: Result, reason: str) -> Result:
        result.verdict = SKIPPED
        result.reason = reason
        return result

    def _next_name(self) -> str:
        self._prepared += 1
        return f"opsdrill_doctest_{self._prepared}"


def _blocks(statements: list[Statement]) -> Iterator[list[Statement]]:
    block: list[Statement] = []
    for stmt in statements:
        if block and stmt.block != block[0].block:
            yield block
            block = []
        block.append(stmt)
    if block:
        yield block


def _bare(sql: str) -> str:
    return sql.strip().rstrip(";").strip()


def _execute(conn: psycopg.Connection, sql: str) -> None:
    """Execute one statement; COPY goes through the copy protocol with no data sent."""
    if strip_comments(sql).upper().startswith("COPY"):
        with conn.cursor() as cur, cur.copy(_bare(sql)) as copy:  # type: ignore[arg-type]
            for _ in copy:
                pass
        return
    conn.execute(_bare(sql))  # type: ignore[arg-type]


class _ScratchUnavailable(Exception):
    pass


class _Scratch:
    """A throwaway copy of the database: a TEMPLATE clone, else a schema-only copy."""

    def __init__(self, dsn: str, statement_timeout: str, lock_timeout: str) -> None:
        self.dsn = dsn
        self.name = f"opsdrill_doctest_{os.getpid()}_{secrets.token_hex(3)}"
        self.settings = f"-c statement_timeout={statement_timeout} -c lock_timeout={lock_timeout}"
        self.created = False
        self.how = ""

    def create(self) -> None:
        try:
            with psycopg.connect(self.dsn, autocommit=True, connect_timeout=5) as conn:
                source = conn.execute("SELECT current_database()").fetchone()[0]  # type: ignore[index]
                try:
                    conn.execute(f'CREATE DATABASE "{self.name}" TEMPLATE "{source}"')  # type: ignore[arg-type]
                    self.created, self.how = True, "template clone"
                    return
                except psycopg.errors.ObjectInUse:
                    conn.execute(f'CREATE DATABASE "{self.name}"')  # type: ignore[arg-type]
                    self.created, self.how = True, "schema-only copy"
        except psycopg.Error as exc:
            raise _ScratchUnavailable(str(exc).strip().splitlines()[0]) from exc
        self._copy_schema(source)

    def _copy_schema(self, source: str) -> None:
        """pg_dump -s | psql, then populate the (empty) materialized views."""
        bindir = _pg_bindir()
        if bindir is None:
            raise _ScratchUnavailable("pg_dump/psql not found and the database is in use")
        env = dict(os.environ, **_pg_env(self.dsn), PGDATABASE=source)
        dump = subprocess.run(
            [str(bindir / "pg_dump"), "--schema-only", "--no-owner", "--no-privileges"],
            env=env, capture_output=True, text=True, check=False,
        )  # fmt: skip
        if dump.returncode != 0:
            raise _ScratchUnavailable(f"pg_dump failed: {dump.stderr.strip()[-200:]}")
        env["PGDATABASE"] = self.name
        subprocess.run(
            [str(bindir / "psql"), "-q", "-X", "-v", "ON_ERROR_STOP=0"],
            input=dump.stdout, env=env, capture_output=True, text=True, check=False,
        )  # fmt: skip
        with self.connection() as conn:
            views = conn.execute("SELECT format('%I.%I', schemaname, matviewname)"
                                 " FROM pg_matviews").fetchall()  # fmt: skip
            for (view,) in views:
                with contextlib.suppress(psycopg.Error):
                    conn.execute(f"REFRESH MATERIALIZED VIEW {view}")  # type: ignore[arg-type]

    @contextlib.contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        dsn = make_conninfo(self.dsn, dbname=self.name, options=self.settings)
        with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as conn:
            yield conn

    def drop(self) -> None:
        if not self.created:
            return
        with (
            contextlib.suppress(psycopg.Error),
            psycopg.connect(self.dsn, autocommit=True, connect_timeout=5) as conn,
        ):
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')  # type: ignore[arg-type]
        self.created = False


def _pg_bindir():  # -> Path | None
    with contextlib.suppress(MissingDependency):
        bindir = find_bindir()
        if (bindir / "pg_dump").exists():
            return bindir
    found = shutil.which("pg_dump")
    return Path(found).parent if found else None


def _pg_env(dsn: str) -> dict[str, str]:
    """libpq environment variables for a DSN, so no password appears on a command line."""
    keys = {"host": "PGHOST", "port": "PGPORT", "user": "PGUSER", "password": "PGPASSWORD",
            "sslmode": "PGSSLMODE"}  # fmt: skip
    parts = conninfo_to_dict(dsn)
    return {env: str(parts[k]) for k, env in keys.items() if parts.get(k) is not None}
