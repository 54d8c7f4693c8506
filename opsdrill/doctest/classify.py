"""What running a statement would do, so the validator knows how far it may go.

    READ          reads only: run in a rolled-back (on production: READ ONLY) transaction
    WRITE         writes or locks, but a rollback undoes it: run and roll back; on
                  production only parsed and analysed (PREPARE), never run
    NONTXN        cannot run in a transaction block (VACUUM, ... CONCURRENTLY): run on a
                  scratch clone of the database; never on production
    CLUSTER       acts on the whole cluster (CREATE/DROP DATABASE, ALTER SYSTEM, ...): a
                  clone cannot contain it, so it is never run
    SIDE_EFFECT   calls something a rollback cannot undo (pg_terminate_backend, nextval,
                  dblink, COPY ... PROGRAM, advisory locks, stats resets): PREPARE only
    TXN_CONTROL   BEGIN/COMMIT/ROLLBACK/SAVEPOINT: the doctest owns the transaction, so these
                  are noted, not run

The classification reads the statement's leading keywords after comments, as PostgreSQL's
own utility dispatch does; it is deliberately conservative: anything not recognised as a
read is treated as a write.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

__all__ = ["Classification", "Kind", "classify", "strip_comments"]


class Kind(enum.Enum):
    READ = "read"
    WRITE = "write"
    NONTXN = "non-transactional"
    CLUSTER = "cluster-wide"
    SIDE_EFFECT = "side effect"
    TXN_CONTROL = "transaction control"


@dataclass(frozen=True)
class Classification:
    kind: Kind
    reason: str
    preparable: bool  # PREPARE accepts it: SELECT, INSERT, UPDATE, DELETE, MERGE, VALUES

    @property
    def runs_in_transaction(self) -> bool:
        return self.kind in (Kind.READ, Kind.WRITE)


#: Functions whose effect survives ROLLBACK (or reaches outside the database).
SIDE_EFFECT_FUNCTIONS = (
    "pg_terminate_backend", "pg_cancel_backend", "pg_reload_conf", "pg_rotate_logfile",
    "pg_switch_wal", "pg_create_restore_point", "pg_backup_start", "pg_backup_stop",
    "pg_start_backup", "pg_stop_backup", "pg_promote", "pg_wal_replay_pause",
    "pg_wal_replay_resume", "pg_stat_reset", "pg_stat_reset_shared",
    "pg_stat_reset_single_table_counters", "pg_stat_reset_single_function_counters",
    "pg_stat_reset_slru", "pg_stat_reset_replication_slot", "pg_stat_statements_reset",
    "pg_advisory_lock", "pg_advisory_lock_shared", "pg_try_advisory_lock",
    "pg_try_advisory_lock_shared", "pg_advisory_unlock", "pg_advisory_unlock_shared",
    "pg_advisory_unlock_all", "nextval", "setval", "dblink", "dblink_exec", "dblink_connect",
    "lo_import", "lo_export", "pg_file_write", "pg_file_unlink", "pg_file_rename",
    "pg_logical_emit_message", "pg_create_physical_replication_slot",
    "pg_create_logical_replication_slot", "pg_drop_replication_slot",
    "pg_replication_origin_create",
    "pg_notify", "pg_sleep", "pg_sleep_for", "pg_sleep_until", "set_config",
)  # fmt: skip
SIDE_EFFECT_CALL = re.compile(r"\b(" + "|".join(SIDE_EFFECT_FUNCTIONS) + r")\s*\(", re.I)
READ_LOCK = re.compile(r"\bFOR\s+(?:NO\s+KEY\s+)?(?:UPDATE|SHARE|KEY\s+SHARE)\b", re.I)
DATA_MODIFYING = re.compile(
    r"\b(INSERT\s+INTO|UPDATE\s+\S+\s+SET|DELETE\s+FROM|MERGE\s+INTO)\b", re.I
)
SELECT_INTO = re.compile(
    r"^\s*SELECT\b.*?\bINTO\s+(?!STRICT\b)(?:TEMP|TEMPORARY|UNLOGGED|TABLE\b)?", re.I | re.S
)

NONTXN_PATTERNS = (
    (r"^VACUUM\b", "VACUUM cannot run inside a transaction block"),
    (r"^CREATE\s+(UNIQUE\s+)?INDEX\s+CONCURRENTLY\b", "CREATE INDEX CONCURRENTLY"),
    (r"^DROP\s+INDEX\s+CONCURRENTLY\b", "DROP INDEX CONCURRENTLY"),
    (r"^REINDEX\b.*\bCONCURRENTLY\b", "REINDEX ... CONCURRENTLY"),
    (r"^REINDEX\s+(\(.*?\)\s*)?(DATABASE|SYSTEM)\b", "REINDEX DATABASE/SYSTEM"),
    (r"^CLUSTER\s*(\(.*\))?\s*(VERBOSE\s*)?;?$", "CLUSTER without a table"),
    (r"^DISCARD\s+ALL\b", "DISCARD ALL"),
    (r"^ALTER\s+TYPE\b.*\bADD\s+VALUE\b", "ALTER TYPE ... ADD VALUE"),
)  # fmt: skip
CLUSTER_PATTERNS = (
    (r"^(CREATE|DROP|ALTER)\s+DATABASE\b", "acts on a database, not inside one"),
    (r"^(CREATE|DROP|ALTER)\s+TABLESPACE\b", "acts on a tablespace"),
    (r"^(CREATE|DROP|ALTER)\s+(ROLE|USER|GROUP)\b", "roles belong to the whole cluster"),
    (r"^ALTER\s+SYSTEM\b", "ALTER SYSTEM rewrites postgresql.auto.conf"),
    (r"^(CREATE|DROP|ALTER)\s+SUBSCRIPTION\b", "subscriptions connect to other servers"),
    (r"^CHECKPOINT\b", "CHECKPOINT acts on the whole cluster"),
    (r"^LOAD\b", "LOAD loads a shared library into the server"),
    (r"^PREPARE\s+TRANSACTION\b", "a prepared transaction outlives the session"),
    (r"^(COMMIT|ROLLBACK)\s+PREPARED\b", "acts on another prepared transaction"),
)  # fmt: skip
TXN_CONTROL = re.compile(
    r"^(BEGIN|START\s+TRANSACTION|COMMIT|END|ROLLBACK|ABORT|SAVEPOINT|RELEASE)\b", re.I
)
READ_START = re.compile(r"^(SELECT|TABLE|VALUES|SHOW|WITH|EXPLAIN|\(+\s*SELECT)\b", re.I)
SESSION_START = re.compile(r"^(SET|RESET)\b", re.I)
PREPARABLE = re.compile(
    r"^(SELECT|TABLE|VALUES|WITH|INSERT|UPDATE|DELETE|MERGE|\(+\s*SELECT)\b", re.I
)


def strip_comments(sql: str) -> str:
    """The statement without comments, string contents kept (good enough for keywords)."""
    return re.sub(r"--[^\n]*|/\*.*?\*/", " ", sql, flags=re.S).strip()


def classify(sql: str) -> Classification:
    """How the statement may be validated (see the module docstring)."""
    text = strip_comments(sql).rstrip(";").strip()
    code = _without_literals(text)
    preparable = bool(PREPARABLE.match(code))
    if TXN_CONTROL.match(code):
        return Classification(Kind.TXN_CONTROL, "transaction control", False)
    for pattern, reason in CLUSTER_PATTERNS:
        if re.match(pattern, code, re.I | re.S):
            return Classification(Kind.CLUSTER, reason, False)
    for pattern, reason in NONTXN_PATTERNS:
        if re.match(pattern, code, re.I | re.S):
            return Classification(Kind.NONTXN, reason, False)
    if re.match(r"^COPY\b", code, re.I) and re.search(r"\bPROGRAM\b", code, re.I):
        return Classification(Kind.SIDE_EFFECT, "COPY ... PROGRAM runs a shell command", False)
    if re.match(r"^COPY\b.*\bTO\s+'", code, re.I | re.S):
        return Classification(Kind.SIDE_EFFECT, "COPY ... TO a server file", False)
    if m := SIDE_EFFECT_CALL.search(code):
        return Classification(
            Kind.SIDE_EFFECT, f"{m.group(1)}() is not undone by ROLLBACK", preparable
        )
    if re.match(r"^EXPLAIN\b", code, re.I):
        return _classify_explain(code)
    if READ_START.match(code) and not _writes(code):
        return Classification(Kind.READ, "reads only", preparable)
    if SESSION_START.match(code):
        return Classification(Kind.READ, "session setting, undone by ROLLBACK", False)
    if re.match(r"^COPY\b.*\bTO\s+STDOUT\b", code, re.I | re.S):
        return Classification(Kind.READ, "COPY ... TO STDOUT reads only", False)
    return Classification(Kind.WRITE, _write_reason(code), preparable)


def _classify_explain(code: str) -> Classification:
    """EXPLAIN plans; EXPLAIN ANALYZE runs the statement, so it is what the statement is."""
    m = re.match(
        r"^EXPLAIN\s*(\((?P<opts>[^)]*)\))?\s*(?P<analyze>ANALYZE\b)?\s*(VERBOSE\b)?", code, re.I
    )
    assert m is not None
    analyze = bool(m.group("analyze")) or bool(
        m.group("opts") and re.search(r"\bANALYZE\b(?!\s+(false|off|0)\b)", m.group("opts"), re.I)
    )
    inner = classify(code[m.end() :])
    if analyze:
        return Classification(inner.kind, f"EXPLAIN ANALYZE runs it: {inner.reason}", True)
    return Classification(Kind.READ, "EXPLAIN without ANALYZE only plans", True)


def _writes(code: str) -> bool:
    return bool(DATA_MODIFYING.search(code) or READ_LOCK.search(code) or SELECT_INTO.match(code))


def _write_reason(code: str) -> str:
    if READ_LOCK.search(code):
        return "locks rows (FOR UPDATE/SHARE)"
    first = " ".join(code.split()[:2]).upper()
    return f"{first} writes or locks"


def _without_literals(text: str) -> str:
    """Blank out string literals and dollar-quoted bodies so keywords inside them don't count."""
    text = re.sub(r"\$([A-Za-z_]\w*)?\$.*?\$\1\$", "''", text, flags=re.S)
    return re.sub(r"'(?:[^']|'')*'", "''", text)
