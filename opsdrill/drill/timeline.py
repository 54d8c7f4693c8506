"""A drill's timeline: typed events on one monotonic clock, with wall-clock times for people."""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

__all__ = ["Event", "Timeline"]


@dataclass(frozen=True)
class Event:
    name: str  # injected, effect_seen, detected, reverted, recovered, ...
    t: float  # seconds since the timeline started (monotonic)
    wall: str  # ISO 8601 UTC, millisecond precision
    detail: str = ""


@dataclass
class Timeline:
    started_mono: float = field(default_factory=time.monotonic)
    started_wall: float = field(default_factory=time.time)
    events: list[Event] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def now(self) -> float:
        return time.monotonic() - self.started_mono

    def mark(self, name: str, detail: str = "", at: float | None = None) -> Event:
        """Record `name` now (or at an offset measured earlier by a poller)."""
        t = self.now() if at is None else at
        wall = datetime.fromtimestamp(self.started_wall + t, UTC).isoformat(timespec="milliseconds")
        event = Event(name, round(t, 3), wall, detail)
        with self._lock:
            self.events.append(event)
            self.events.sort(key=lambda e: e.t)
        return event

    def first(self, name: str) -> Event | None:
        return next((e for e in self.events if e.name == name), None)

    def between(self, start: str, end: str) -> float | None:
        """Seconds from the first `start` event to the first `end` event, if both happened."""
        a, b = self.first(start), self.first(end)
        return None if a is None or b is None else round(b.t - a.t, 3)

    def to_list(self) -> list[dict[str, object]]:
        return [asdict(e) for e in self.events]
