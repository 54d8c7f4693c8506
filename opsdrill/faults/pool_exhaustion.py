"""Every connection slot of PostgreSQL held by idle sessions: runbook §5.2.2 case 2.

Real connections as the app's role, each named `opsdrill-fault-<id>` so the revert (or a
rollback from another process) finds them in `pg_stat_activity`. The app's pooled connections
are then recycled (terminated, as `max_lifetime` would) and every slot that frees up is taken
at once: the app can open none and its `/health` answers 503 until an operator terminates
the idle sessions (the leak then stops refilling, as a leak would not refill instantly).

The sessions live in this process: a SIGKILL closes their sockets and the server ends them.
Three superuser slots stay free (`superuser_reserved_connections`) for the fix.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any

import psycopg

from opsdrill.errors import FaultNotEffective
from opsdrill.faults.base import JOURNAL, Fault, register
from opsdrill.targets.base import Target

__all__ = ["PoolExhaustion", "fault_app_name", "is_slot_refusal", "terminate_fault_sessions"]

TOO_MANY = "53300"  # too_many_connections
#: how the server words "no slot left" (psycopg leaves sqlstate unset on a failed connect)
REFUSALS = ("too many clients", "remaining connection slots are reserved")


def is_slot_refusal(exc: Exception) -> bool:
    """True when a failed connect means "no connection slot left"."""
    return getattr(exc, "sqlstate", None) == TOO_MANY or any(r in str(exc) for r in REFUSALS)


APP_SESSIONS = "nf_auto_runner"


def fault_app_name(fault_id: str) -> str:
    """The application_name every session of one fault carries."""
    return f"opsdrill-fault-{fault_id}"


def terminate_fault_sessions(admin_dsn: str, fault_id: str) -> int:
    """pg_terminate_backend every session of the fault; the number terminated."""
    with psycopg.connect(admin_dsn, autocommit=True, connect_timeout=5) as conn:
        row = conn.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = %s AND pid <> pg_backend_pid()",
            (fault_app_name(fault_id),),
        ).fetchone()
    return int(row[0]) if row else 0


@register
class PoolExhaustion(Fault):
    """Idle sessions hold every connection slot; the app cannot open a connection."""

    kind = "pool_exhaustion"

    needs = JOURNAL | {"admin_sql"}
    blast_radius = "every new database connection of the app role: API requests, exporter, workers"
    undo_summary = "terminate the fault's sessions (application_name opsdrill-fault-<id>)"

    def __init__(self, target: Target, *, limit: int = 400, settle: float = 10.0) -> None:
        super().__init__(target, limit=limit, settle=settle)
        self.held: list[psycopg.Connection[Any]] = []
        self._closing = threading.Event()
        self._full = threading.Event()
        self._filler: threading.Thread | None = None

    def _connect(self) -> psycopg.Connection[Any] | None:
        """One more idle session, or None when the server says there is no slot left."""
        try:
            return psycopg.connect(
                self.target.endpoints.dsn,
                autocommit=True,
                connect_timeout=5,
                application_name=fault_app_name(self.entry.fault_id),
            )
        except psycopg.OperationalError as exc:
            if is_slot_refusal(exc):
                return None
            raise

    def _fill(self) -> int:
        """Open sessions until refused; how many were opened."""
        opened = 0
        while len(self.held) < self.params["limit"] and not self._closing.is_set():
            conn = self._connect()
            if conn is None:
                break
            self.held.append(conn)
            opened += 1
        return opened

    def _recycle_app_sessions(self, admin: psycopg.Connection[Any]) -> int:
        """Terminate the app's sessions (as max_lifetime would recycle them); how many."""
        row = admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name LIKE %s AND pid <> pg_backend_pid()",
            (APP_SESSIONS + "%",),
        ).fetchone()
        return int(row[0]) if row else 0

    def _ours(self, admin: psycopg.Connection[Any]) -> int:
        row = admin.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
            (fault_app_name(self.entry.fault_id),),
        ).fetchone()
        return int(row[0]) if row else 0

    def _keep_full(self) -> None:
        """Take every slot that frees up and keep the app's sessions out, until someone
        terminates one of ours (the operator's fix) or the fault is reverted."""
        with psycopg.connect(self.target.admin_dsn, autocommit=True) as admin:
            while not self._closing.wait(0.05):
                if self._ours(admin) < len(self.held):
                    break  # an intervention: a leak does not refill at once
                recycled = self._recycle_app_sessions(admin)
                self._fill()
                if recycled == 0 and len(self.held) >= self.params["limit"]:
                    break
                self._full.set()

    def _inject(self) -> None:
        self.save_undo(application_name=fault_app_name(self.entry.fault_id))
        self._fill()
        if not self.held:
            raise FaultNotEffective("not one idle session could be opened as the app's role")
        self._full = threading.Event()
        self._filler = threading.Thread(target=self._keep_full, name="pool-filler", daemon=True)
        self._filler.start()
        self._full.wait(self.params["settle"])
        self.save_undo(held=len(self.held))

    def _revert(self) -> None:
        self._closing.set()
        if self._filler is not None:
            self._filler.join(10)
        for conn in self.held:
            with contextlib.suppress(Exception):
                conn.close()
        self.held.clear()
        terminate_fault_sessions(self.target.admin_dsn, self.entry.fault_id)
