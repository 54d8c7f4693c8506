"""A transaction holding a conflicting lock on `runs`: runbook §5.2.2 case 3.

A real session (application_name `opsdrill-fault-<id>`) takes the lock in an open
transaction and sits idle in it, as a forgotten `BEGIN; LOCK ...` in a psql window would.
Every query on `runs` (run submissions, listings, forecasts, which join `runs`) queues behind
it. A SIGKILL of this process closes the socket; the server then rolls the transaction back.
"""

from __future__ import annotations

import contextlib
from typing import Any

import psycopg

from opsdrill.faults.base import JOURNAL, Fault, register
from opsdrill.faults.pool_exhaustion import fault_app_name, terminate_fault_sessions
from opsdrill.targets.base import Target

__all__ = ["LOCK_MODES", "LockContention"]

#: modes that conflict with what the app takes on `runs` (ACCESS SHARE for reads,
#: ROW EXCLUSIVE for writes); the first blocks reads too, the second only writes.
LOCK_MODES = ("ACCESS EXCLUSIVE", "EXCLUSIVE")


@register
class LockContention(Fault):
    """A session holds a lock on a table in an open transaction; queries on it wait."""

    kind = "lock_contention"

    needs = JOURNAL | {"admin_sql"}
    blast_radius = "every statement on the locked table: run submission and listing, forecasts"
    undo_summary = "terminate the locking session (application_name opsdrill-fault-<id>)"

    def __init__(
        self, target: Target, *, table: str = "runs", mode: str = "ACCESS EXCLUSIVE"
    ) -> None:
        if mode not in LOCK_MODES:
            raise ValueError(f"lock mode {mode!r}: use one of {', '.join(LOCK_MODES)}")
        if not table.isidentifier():
            raise ValueError(f"table {table!r} is not a plain identifier")
        super().__init__(target, table=table, mode=mode)
        self.conn: psycopg.Connection[Any] | None = None

    def _inject(self) -> None:
        self.save_undo(application_name=fault_app_name(self.entry.fault_id))
        self.conn = psycopg.connect(
            self.target.admin_dsn,
            connect_timeout=5,
            application_name=fault_app_name(self.entry.fault_id),
        )
        self.conn.execute(f"LOCK TABLE {self.params['table']} IN {self.params['mode']} MODE")
        self.save_undo(blocker_pid=self.conn.info.backend_pid)

    def _revert(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(Exception):
                self.conn.rollback()
                self.conn.close()
            self.conn = None
        terminate_fault_sessions(self.target.admin_dsn, self.entry.fault_id)
