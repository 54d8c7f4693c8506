"""A drill's timeline: typed events on one monotonic clock, with wall-clock times for people.

Procedure steps are journaled the chaostoolkit way: a `StepRecord` is opened before the step
runs and closed in `finally` (start, end, status, what it did or why it failed), so the
recovery procedure's part of the MTTR is measured, not narrated.
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

__all__ = ["Event", "StepRecord", "Timeline"]


@dataclass(frozen=True)
class Event:
    name: str  # injecting, injected, effect_seen, detected, procedure_step, recovered, ...
    t: float  # seconds since the timeline started (monotonic)
    wall: str  # ISO 8601 UTC, millisecond precision
    detail: str = ""


@dataclass
class StepRecord:
    """One step of a recovery procedure, as it ran."""

    runbook: str  # the procedure's runbook id, e.g. "5.2.2"
    procedure: str  # the procedure's title, e.g. "fix 1: start PostgreSQL"
    step: str  # the step, in the runbook's words
    start: float  # seconds on the timeline
    end: float | None = None
    status: str = "running"  # running, succeeded, failed
    actions: list[str] = field(default_factory=list)
    error: str = ""

    @property
    def duration(self) -> float | None:
        return None if self.end is None else round(self.end - self.start, 3)


@dataclass
class Timeline:
    started_mono: float = field(default_factory=time.monotonic)
    started_wall: float = field(default_factory=time.time)
    events: list[Event] = field(default_factory=list)
    steps: list[StepRecord] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def now(self) -> float:
        return time.monotonic() - self.started_mono

    def wall(self, t: float) -> str:
        return datetime.fromtimestamp(self.started_wall + t, UTC).isoformat(timespec="milliseconds")

    def mark(self, name: str, detail: str = "", at: float | None = None) -> Event:
        """Record `name` now (or at an offset measured earlier by a poller)."""
        t = self.now() if at is None else at
        event = Event(name, round(t, 3), self.wall(t), detail)
        with self._lock:
            self.events.append(event)
            self.events.sort(key=lambda e: e.t)
        return event

    def begin_step(self, runbook: str, procedure: str, step: str) -> StepRecord:
        record = StepRecord(runbook, procedure, step, round(self.now(), 3))
        with self._lock:
            self.steps.append(record)
        self.mark("procedure_step", f"§{runbook} {step}", at=record.start)
        return record

    def end_step(self, record: StepRecord, actions: list[str], error: str = "") -> None:
        record.end = round(self.now(), 3)
        record.actions, record.error = actions, error
        record.status = "failed" if error else "succeeded"
        detail = f"§{record.runbook} {record.step}: " + (error or "; ".join(actions) or "done")
        self.mark(f"procedure_step_{record.status}", detail, at=record.end)

    def first(self, name: str, detail: str | None = None) -> Event | None:
        return next((e for e in self.events if e.name == name and detail in (None, e.detail)), None)

    def between(self, start: str, end: str) -> float | None:
        """Seconds from the first `start` event to the first `end` event, if both happened."""
        a, b = self.first(start), self.first(end)
        return None if a is None or b is None else round(b.t - a.t, 3)

    def to_list(self) -> list[dict[str, object]]:
        return [asdict(e) for e in self.events]

    def steps_to_list(self) -> list[dict[str, object]]:
        return [asdict(s) | {"duration": s.duration} for s in self.steps]
