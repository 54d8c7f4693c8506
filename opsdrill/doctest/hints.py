"""A hint for each broken statement: the database's own HINT, else what we know fixes it.

The known mistakes are the ones runbooks make again and again: columns borrowed from
`pg_indexes`/`pg_tables` on the statistics views, `ROUND(AVG(col), 2)` over a double precision
column, pre-13 `pg_stat_statements` columns, pre-9.2 `pg_stat_activity` columns; a typo'd
name gets the nearest names in the live schema.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field

__all__ = ["Catalog", "hint_for"]

#: (view pattern, wrong column) -> hint
KNOWN_COLUMNS: dict[tuple[str, str], str] = {
    **{
        (view, col): "pg_stat_user_indexes has relname/indexrelname, not tablename/indexname "
        "(those are pg_indexes' columns)"
        for view in ("pg_stat_user_indexes", "pg_stat_all_indexes", "pg_statio_user_indexes")
        for col in ("tablename", "indexname")
    },
    **{
        (view, "tablename"): "pg_stat_user_tables has relname, not tablename "
        "(that is pg_tables' column)"
        for view in ("pg_stat_user_tables", "pg_stat_all_tables", "pg_statio_user_tables")
    },
    **{
        ("pg_stat_statements", col): "pg_stat_statements has total_exec_time, mean_exec_time, "
        "max_exec_time, min_exec_time and stddev_exec_time since PostgreSQL 13"
        for col in ("total_time", "mean_time", "max_time", "min_time", "stddev_time")
    },
    ("pg_stat_activity", "procpid"): "pg_stat_activity has pid, not procpid, since PostgreSQL 9.2",
    ("pg_stat_activity", "current_query"): "pg_stat_activity has query (and state), not "
    "current_query, since PostgreSQL 9.2",
}


#: PostgreSQL's own HINT for this one ("add explicit type casts") points at the wrong fix
ROUND_DOUBLE = (
    "round(x, n) exists for numeric only and this column is double precision: the runbook's "
    "SQL is the contract, so make the column numeric in the schema (a migration), not a cast "
    "in the runbook"
)


@dataclass
class Catalog:
    """Relation and column names of the live database, for did-you-mean hints."""

    relations: set[str] = field(default_factory=set)
    columns: dict[str, set[str]] = field(default_factory=dict)

    @classmethod
    def load(cls, conn: object) -> Catalog:
        rows = conn.execute(  # type: ignore[attr-defined]
            "SELECT c.relname, a.attname FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0"
            "  AND NOT a.attisdropped"
            " WHERE c.relkind IN ('r', 'v', 'm', 'p', 'f')"
            "  AND n.nspname NOT IN ('information_schema', 'pg_toast')"
        ).fetchall()
        catalog = cls()
        for relname, attname in rows:
            catalog.relations.add(relname)
            if attname:
                catalog.columns.setdefault(relname, set()).add(attname)
        return catalog

    def near_relations(self, name: str) -> list[str]:
        return difflib.get_close_matches(name, sorted(self.relations), n=3, cutoff=0.6)

    def near_columns(self, name: str, sql: str) -> list[str]:
        """Columns like `name`, from the relations the statement mentions (else everywhere)."""
        words = set(re.findall(r"[a-z_][a-z0-9_]*", sql.lower()))
        used = [r for r in self.columns if r in words] or list(self.columns)
        names = sorted({c for r in used for c in self.columns[r]})
        return difflib.get_close_matches(name, names, n=3, cutoff=0.6)


def hint_for(
    sqlstate: str | None, message: str, db_hint: str | None, sql: str, catalog: Catalog
) -> str | None:
    """The most useful hint for this error, or None."""
    lowered = sql.lower()
    if sqlstate == "42703":  # undefined_column
        column = _quoted_name(message)
        for (view, col), hint in KNOWN_COLUMNS.items():
            if column and column.split(".")[-1] == col and view in lowered:
                return hint
        if db_hint:
            return db_hint
        if column and (near := catalog.near_columns(column.split(".")[-1], sql)):
            return "no such column here; nearest in the schema: " + ", ".join(near)
    if sqlstate == "42883" and "round(double precision, integer)" in message:
        return ROUND_DOUBLE
    if sqlstate == "42P01":  # undefined_table
        table = _quoted_name(message)
        if table == "pg_stat_statements":
            return (
                "create the extension in this database (CREATE EXTENSION pg_stat_statements); "
                "it also needs shared_preload_libraries = 'pg_stat_statements'"
            )
        if table and (near := catalog.near_relations(table.split(".")[-1])):
            return "no such table or view; did you mean " + " or ".join(near) + "?"
    if db_hint:
        return db_hint
    if sqlstate == "25001":  # active_sql_transaction
        return "the doctest's classifier let a non-transactional statement into a transaction"
    if sqlstate == "42501":  # insufficient_privilege
        return (
            "the doctest connects as the application role; say in the runbook which role runs this"
        )
    if sqlstate == "55000" and "concurrently" in lowered:
        return "REFRESH ... CONCURRENTLY needs a unique index on the materialized view"
    return None


def _quoted_name(message: str) -> str | None:
    m = re.search(r'"([^"]+)"', message)
    return m.group(1) if m else None
