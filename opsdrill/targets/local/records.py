"""The stack's state.json: the ports chosen for its services and the processes it started.

Every LocalTarget on a state directory (the CLI, the plugin, a rollback in another process)
reads and writes the same file, so each change is made under an exclusive lock on `.lock`.
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path

from opsdrill import ports
from opsdrill.processes import ProcessRef
from opsdrill.state import ServiceRecord, StackState

__all__ = ["StackRecords", "alive"]


class StackRecords:
    """Ports and service records in `state_dir`: the RecordStore the stack's services use."""

    state_dir: Path

    @contextlib.contextmanager
    def _locked(self) -> Iterator[StackState]:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with open(self.state_dir / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            state = StackState.load(self.state_dir)
            yield state
            state.save(self.state_dir)

    def _state(self) -> StackState:
        return StackState.load(self.state_dir)

    def get_record(self, name: str) -> ServiceRecord | None:
        return self._state().services.get(name)

    def put_record(self, name: str, record: ServiceRecord | None) -> None:
        with self._locked() as state:
            if record is None:
                state.services.pop(name, None)
            else:
                state.services[name] = record

    def _port(self, name: str) -> int:
        """The service's port: chosen once, kept while free, re-chosen if taken by a stranger."""
        state = self._state()
        if name in state.ports:
            return state.ports[name]
        with self._locked() as state:
            taken = set(state.ports.values())
            port = ports.free_port()
            while port in taken:
                port = ports.free_port()
            state.ports[name] = port
            return port

    def _dead_pid(self, name: str) -> int | None:
        """The recorded pid of a service we started that is gone (by start time), if any."""
        rec = self.get_record(name)
        return rec.pid if rec is not None and rec.pid > 0 and not alive(rec) else None


def alive(rec: ServiceRecord) -> bool:
    """The recorded process still runs: the same pid with the same start time."""
    return rec.pid > 0 and ProcessRef(rec.pid, rec.ticks).alive()
