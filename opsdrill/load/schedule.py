"""Open-model pacing: when each request *should* be sent, whatever the server is doing.

Each virtual user owns a share of the target arrival rate. Its k-th request is due at a fixed
time derived from the shared start `t0`, the ramp and its share, so a slow response delays the
next send but never moves its due time: latency is measured from the due time, and a stalled
server shows up in the percentiles instead of quietly lowering the load (no coordinated
omission). The rate ramps linearly from 0 over `ramp` seconds, then holds for `duration`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["UserSchedule"]


@dataclass(frozen=True)
class UserSchedule:
    """One user's due times: `rate` per second after the ramp, phase-shifted by `phase` ∈ [0,1)."""

    t0: float
    ramp: float
    duration: float
    rate: float
    phase: float = 0.0

    @property
    def steady_start(self) -> float:
        return self.t0 + self.ramp

    @property
    def end(self) -> float:
        return self.t0 + self.ramp + self.duration

    def due_times(self) -> Iterator[float]:
        """Every due time, in order, up to the end of the steady phase."""
        ramp_events = self.rate * self.ramp / 2  # events the linear ramp holds
        k = 0
        while True:
            x = k + self.phase
            if x < ramp_events:
                t = math.sqrt(2 * self.ramp * x / self.rate)
            else:
                t = self.ramp + (x - ramp_events) / self.rate
            if t >= self.ramp + self.duration:
                return
            yield self.t0 + t
            k += 1

    def in_steady(self, due: float) -> bool:
        """True when a request due at `due` belongs to the judged (steady) phase."""
        return self.steady_start <= due < self.end

    def steady_count(self) -> int:
        """How many requests this user is due to send during the steady phase."""
        return sum(1 for t in self.due_times() if t >= self.steady_start)
