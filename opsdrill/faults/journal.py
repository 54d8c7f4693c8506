"""The fault journal: every fault on disk before it is injected, gone only once reverted.

One JSON file per active fault in `<Target.journal_dir>/faults/`, on the machine running
opsdrill. A run killed with SIGKILL cannot run its `finally`, but it cannot take the journal
with it either: the next session, or `opsdrill rollback`, finds the entries and reverts them
before anything else happens. Each entry names its runner by pid *and* start time, so a
session reverts only what a dead runner left, never a drill another session is running now
(nor one whose pid was recycled).
"""

from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from opsdrill.processes import ProcessRef, pid_alive, start_ticks
from opsdrill.state import write_json_atomic

__all__ = ["Journal", "JournalEntry"]


@dataclass
class JournalEntry:
    """What was (or was about to be) done, and what undoing it needs."""

    kind: str
    params: dict[str, Any]
    fault_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    phase: str = "injecting"  # -> "injected"; the file is deleted once reverted
    undo: dict[str, Any] = field(default_factory=dict)
    runner_pid: int = field(default_factory=os.getpid)
    created_at: float = field(default_factory=time.time)
    #: the runner's start time (clock ticks since boot); None in entries written before it was
    runner_ticks: int | None = field(default_factory=lambda: start_ticks(os.getpid()))

    def runner_alive(self) -> bool:
        """True while the process that injected this fault still runs: its drill owns it."""
        if self.runner_ticks is None:
            return pid_alive(self.runner_pid)
        return ProcessRef(self.runner_pid, self.runner_ticks).alive()


class Journal:
    def __init__(self, journal_dir: Path) -> None:
        self.dir = journal_dir / "faults"

    def _path(self, fault_id: str) -> Path:
        return self.dir / f"{fault_id}.json"

    def write(self, entry: JournalEntry) -> None:
        """Record (or update) an entry durably: it must survive a SIGKILL right after."""
        self.dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self._path(entry.fault_id), asdict(entry), mode=0o600)

    def remove(self, entry: JournalEntry) -> None:
        self._path(entry.fault_id).unlink(missing_ok=True)

    def entries(self) -> list[JournalEntry]:
        """Active faults, oldest first (they are reverted newest first)."""
        if not self.dir.exists():
            return []
        found = []
        for path in self.dir.glob("*.json"):
            try:
                found.append(JournalEntry(**{"runner_ticks": None, **json.loads(path.read_text())}))
            except (json.JSONDecodeError, TypeError):
                continue  # a torn write cannot happen (atomic rename); ignore foreign files
        return sorted(found, key=lambda e: e.created_at)
