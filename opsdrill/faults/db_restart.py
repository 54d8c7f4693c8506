"""PostgreSQL restarted (fast shutdown, then start): every session of the app is cut.

Unlike `DbDown` the database is back when `inject()` returns; what is drilled is whether the
app notices its pooled connections are dead and replaces them without being restarted.
"""

from __future__ import annotations

from opsdrill.errors import FaultNotEffective
from opsdrill.faults.base import CONTROL, Fault, register

__all__ = ["DbRestart"]


@register
class DbRestart(Fault):
    """PostgreSQL restarted: all connections are closed, the server comes back at once."""

    kind = "db_restart"

    needs = CONTROL
    blast_radius = "every open database session: requests in flight, pooled connections"
    undo_summary = "make sure PostgreSQL runs (it is started again by the fault itself)"
    recovers_by_itself = True
    recovers_reason = (
        "PostgreSQL is back when the restart returns; the app must replace its dead pooled "
        "connections by itself, without a restart"
    )

    def _inject(self) -> None:
        db = self.target.service("db")
        pid = db.pid()
        if pid is None:
            raise FaultNotEffective("PostgreSQL is not running, so it cannot be restarted")
        self.save_undo(pid=pid)
        db.stop()
        db.start(timeout=60)

    def _revert(self) -> None:
        db = self.target.service("db")
        if not db.is_running():
            db.start(timeout=120)
