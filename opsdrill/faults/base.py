"""A fault is a context manager: `inject()` records then breaks, `revert()` repairs then forgets.

Shaped like pytest's MonkeyPatch: each fault records in its journal entry what undoing it
needs *before* it acts, and `revert()` is safe to call twice, after a half-done inject, and
from another process that only has the journal entry (`Fault.from_entry`).
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from typing import Any, ClassVar, Self

from opsdrill import events
from opsdrill.errors import FaultNotEffective, RevertFailed, ServiceError
from opsdrill.faults.journal import Journal, JournalEntry
from opsdrill.targets.base import Target

__all__ = ["CONTROL", "JOURNAL", "REGISTRY", "Fault", "register"]

#: what every fault needs of a target: a journal, so a killed run's fault can be undone
JOURNAL = frozenset({"fault_journal"})
#: and a fault that starts, stops or kills the stack's services (`Target.capabilities`)
CONTROL = JOURNAL | {"service_control"}

REGISTRY: dict[str, type[Fault]] = {}


def register(cls: type[Fault]) -> type[Fault]:
    """Make a fault class revertable from the journal by its `kind`."""
    REGISTRY[cls.kind] = cls
    return cls


class Fault(ABC):
    kind: ClassVar[str]
    #: one line for --plan: what breaks, how widely, and how it is undone
    blast_radius: ClassVar[str] = ""
    undo_summary: ClassVar[str] = ""
    #: True for a fault the stack is expected to ride out with no procedure (latency a toxic
    #: adds): its drill checks the steady state holds, or comes back, while it is in place
    recovers_by_itself: ClassVar[bool] = False
    #: why it is transient by nature; required when `recovers_by_itself` is True
    recovers_reason: ClassVar[str] = ""
    #: what the target must offer for this fault (`opsdrill.targets.base.CAPABILITIES`); the
    #: production guard skips a drill at collection on a target that lacks one
    needs: ClassVar[frozenset[str]] = JOURNAL

    def __init__(self, target: Target, **params: Any) -> None:
        self.target = target
        self.params = params
        self.entry = JournalEntry(kind=self.kind, params=params)
        self.journal = Journal(target.journal_dir)
        self.active = False
        self._lock = threading.Lock()

    @classmethod
    def from_entry(cls, target: Target, entry: JournalEntry) -> Fault:
        """Rebuild a fault from its journal entry, so another process can revert it."""
        fault = REGISTRY[entry.kind](target, **entry.params)
        fault.entry = entry
        fault.active = True
        return fault

    def describe(self) -> str:
        params = ", ".join(f"{k}={v}" for k, v in self.params.items())
        return f"{self.kind}({params})"

    def inject(self) -> None:
        with self._lock:
            self.journal.write(self.entry)
            self.active = True
            self._inject()
            self.entry.phase = "injected"
            self.journal.write(self.entry)
        events.emit("fault_injected", fault=self)

    def revert(self) -> None:
        with self._lock:
            if not self.active:
                return
            try:
                self._revert()
            except Exception as exc:
                raise RevertFailed(
                    f"could not revert {self.describe()}: {exc}; the journal entry is kept in "
                    f"{self.journal.dir}, run 'opsdrill rollback' once the cause is fixed"
                ) from exc
            self.active = False
            self.journal.remove(self.entry)
        events.emit("fault_reverted", fault=self)

    @abstractmethod
    def _inject(self) -> None:
        """Break the stack. Store in self.entry.undo (then journal.write) what revert needs."""

    @abstractmethod
    def _revert(self) -> None:
        """Repair. Must tolerate a half-done inject and a second call."""

    def require_refused_start(self, service: str, cause: str) -> str:
        """Start `service`, which the fault should make impossible; return the refusal.

        A start that succeeds means the fault had no effect. The refusal is journaled, so a
        drill (or another process) can show what the service said.
        """
        try:
            self.target.service(service).start(timeout=60)
        except ServiceError as exc:
            self.save_undo(start_error=str(exc))
            return str(exc)
        raise FaultNotEffective(f"the {service} started although {cause}")

    def save_undo(self, **undo: Any) -> None:
        """Record undo data durably before the step that needs it is taken."""
        self.entry.undo.update(undo)
        self.journal.write(self.entry)

    def __enter__(self) -> Self:
        try:
            self.inject()
        except BaseException:
            self.revert()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.revert()
