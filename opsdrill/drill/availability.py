"""A background availability probe that runs through the whole drill.

It asks one cheap question (`GET /health` by default) every `interval` seconds and keeps every
answer, so the report can say how many requests failed and when, not just whether the stack
came back.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

__all__ = ["AvailabilityProbe", "Sample"]


@dataclass(frozen=True)
class Sample:
    t: float  # seconds on the drill's timeline
    ok: bool
    status: int  # 0 when there was no HTTP answer
    latency: float


class AvailabilityProbe:
    def __init__(
        self,
        url: str,
        clock: Callable[[], float],
        *,
        interval: float = 0.1,
        timeout: float = 2.0,
        max_samples: int = 50_000,
    ) -> None:
        self.url = url
        self.clock = clock
        self.interval = interval
        self.timeout = timeout
        self.max_samples = max_samples  # bounds memory and traffic even if stop() is never called
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="availability", daemon=True)

    def __enter__(self) -> AvailabilityProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(self.timeout + 1)

    def _loop(self) -> None:
        with httpx.Client(timeout=self.timeout) as client:
            while not self._stop.is_set() and len(self.samples) < self.max_samples:
                t = self.clock()
                t0 = time.perf_counter()
                try:
                    status = client.get(self.url).status_code
                except httpx.HTTPError:
                    status = 0
                self.samples.append(
                    Sample(round(t, 3), status == 200, status, time.perf_counter() - t0)
                )
                self._stop.wait(self.interval)

    @property
    def failed(self) -> int:
        return sum(1 for s in self.samples if not s.ok)

    @property
    def total(self) -> int:
        return len(self.samples)

    def downtime(self) -> float:
        """Seconds between the first failed sample and the next successful one, summed."""
        down, start = 0.0, None
        for s in self.samples:
            if not s.ok and start is None:
                start = s.t
            elif s.ok and start is not None:
                down += s.t - start
                start = None
        if start is not None and self.samples:
            down += self.samples[-1].t - start
        return round(down, 3)
