"""Committed rows deleted by mistake (`TRUNCATE`): the case for runbook §5.3.2.

Before the rows go, the table's data is copied out (`COPY ... TO STDOUT`, binary, over the
target's admin connection) into a file next to the journal entry, on the machine running
opsdrill, so a revert from any process can put them back without PostgreSQL's tools where the
database runs; the drill itself recovers with the runbook's procedure (restore the newest
backup) and the revert then finds nothing to do.
"""

from __future__ import annotations

from pathlib import Path

import psycopg
from psycopg import sql

from opsdrill.errors import FaultNotEffective
from opsdrill.faults.base import JOURNAL, Fault, register
from opsdrill.targets.base import Target

__all__ = ["DataLoss", "row_count"]

BLOCK = 1024 * 1024


def row_count(admin_dsn: str, table: str) -> int:
    with psycopg.connect(admin_dsn, autocommit=True, connect_timeout=5) as conn:
        row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table)))
        found = row.fetchone()
    return int(found[0]) if found else 0


def copy_out(admin_dsn: str, table: str, dump: Path) -> None:
    """The table's rows into `dump` (COPY binary), written beside and renamed into place."""
    part = dump.with_name(dump.name + ".part")
    query = sql.SQL("COPY {} TO STDOUT (FORMAT binary)").format(sql.Identifier(table))
    with (
        psycopg.connect(admin_dsn, autocommit=True, connect_timeout=5) as conn,
        open(part, "wb") as out,
        conn.cursor().copy(query) as copy,
    ):
        for data in copy:
            out.write(data)
    part.replace(dump)


def copy_in(admin_dsn: str, table: str, dump: Path) -> None:
    """Load `dump` (what `copy_out` wrote) back into the table, in one transaction."""
    query = sql.SQL("COPY {} FROM STDIN (FORMAT binary)").format(sql.Identifier(table))
    with (
        psycopg.connect(admin_dsn, connect_timeout=5) as conn,
        open(dump, "rb") as src,
        conn.cursor().copy(query) as copy,
    ):
        while data := src.read(BLOCK):
            copy.write(data)


@register
class DataLoss(Fault):
    """Every row of a table deleted by mistake."""

    kind = "data_loss"

    needs = JOURNAL | {"admin_sql"}
    blast_radius = "every reader of the table (forecasts need `series`); nothing else"
    undo_summary = "reload the table's rows from the copy taken just before the TRUNCATE"

    def __init__(self, target: Target, *, table: str = "series") -> None:
        if not table.isidentifier():
            raise ValueError(f"table {table!r} is not a plain identifier")
        super().__init__(target, table=table)

    def _inject(self) -> None:
        table, admin = self.params["table"], self.target.admin_dsn
        rows = row_count(admin, table)
        if rows == 0:
            raise FaultNotEffective(f"table {table} is already empty: nothing to lose")
        self.journal.dir.mkdir(parents=True, exist_ok=True)
        dump = self.journal.dir / f"{self.entry.fault_id}.{table}.copy"
        copy_out(admin, table, dump)
        self.save_undo(dump=str(dump), rows=rows)
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("TRUNCATE {}").format(sql.Identifier(table)))

    def _revert(self) -> None:
        table, admin = self.params["table"], self.target.admin_dsn
        dump = Path(self.entry.undo.get("dump", "/nonexistent"))
        if dump.exists() and row_count(admin, table) == 0:
            copy_in(admin, table, dump)
        dump.unlink(missing_ok=True)
