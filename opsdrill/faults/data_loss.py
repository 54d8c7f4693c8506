"""Committed rows deleted by mistake (`TRUNCATE`): the case for runbook §5.3.2.

Before the rows go, the table's data is dumped (`pg_dump -Fc --data-only`) next to the
journal entry, so a revert from any process can put them back; the drill itself recovers with
the runbook's procedure (restore the newest backup) and the revert then finds nothing to do.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import psycopg

from opsdrill.errors import FaultNotEffective
from opsdrill.faults.base import Fault, register
from opsdrill.targets.local import LocalTarget
from opsdrill.targets.postgres import DATABASE

__all__ = ["DataLoss", "row_count"]


def row_count(admin_dsn: str, table: str) -> int:
    with psycopg.connect(admin_dsn, autocommit=True, connect_timeout=5) as conn:
        row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
    return int(row[0]) if row else 0


@register
class DataLoss(Fault):
    """Every row of a table deleted by mistake."""

    kind = "data_loss"
    blast_radius = "every reader of the table (forecasts need `series`); nothing else"
    undo_summary = "reload the table's rows from the dump taken just before the TRUNCATE"

    def __init__(self, target: LocalTarget, *, table: str = "series") -> None:
        if not table.isidentifier():
            raise ValueError(f"table {table!r} is not a plain identifier")
        super().__init__(target, table=table)

    def _tool(self, name: str) -> str:
        return str(self.target.cluster.bindir / name)

    def _inject(self) -> None:
        table, admin = self.params["table"], self.target.cluster.admin_conninfo(DATABASE)
        rows = row_count(admin, table)
        if rows == 0:
            raise FaultNotEffective(f"table {table} is already empty: nothing to lose")
        dump = self.journal.dir / f"{self.entry.fault_id}.{table}.dump"
        subprocess.run(
            [self._tool("pg_dump"), "-Fc", "--data-only", "-t", table, "-f", str(dump),
             "-d", admin],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        self.save_undo(dump=str(dump), rows=rows)
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"TRUNCATE {table}")

    def _revert(self) -> None:
        table, admin = self.params["table"], self.target.cluster.admin_conninfo(DATABASE)
        dump = Path(self.entry.undo.get("dump", "/nonexistent"))
        if dump.exists() and row_count(admin, table) == 0:
            subprocess.run(
                [self._tool("pg_restore"), "--data-only", "-t", table, "-d", admin, str(dump)],
                check=True, capture_output=True, timeout=120,
            )  # fmt: skip
        dump.unlink(missing_ok=True)
