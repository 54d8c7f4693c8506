"""The drills' yes/no questions, asked until yes or a deadline (on `opsdrill.polling`).

Detectors are polled concurrently (`wait_all`, one thread each), so a slow probe — a forecast
that takes seconds, a Prometheus query — cannot delay the timestamp of another. The time
recorded is when the answer came back: what a pager would have seen.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from opsdrill.polling import poll

__all__ = ["STEP", "Detection", "Detector", "Polling", "wait_all"]

STEP = 0.05  # polling step: well under the 250 ms timeline resolution


@dataclass(frozen=True)
class Detection:
    """A detector's answer: yes at `t` (seconds on the drill's clock), or never (t None)."""

    name: str
    kind: str
    t: float | None


@dataclass
class Detector:
    """A yes/no question about the stack, asked repeatedly until yes or the deadline.

    `kind` says who would notice in production: "alert" (Prometheus/Alertmanager) or "probe"
    (a symptom the runbook names, asked by the harness). `note` is shown next to its MTTD,
    e.g. that the alert's `for:` is scaled in the embedded stack.
    """

    name: str
    check: Callable[[], bool]
    timeout: float = 30.0
    kind: str = "probe"
    note: str = ""
    #: seconds production would take longer to say yes (an alert's scaled `for:`)
    production_offset: float = 0.0
    #: why this target cannot answer it (e.g. no Prometheus): recorded as skipped, never asked
    skipped: str = ""

    def ask(self) -> bool:
        try:
            return bool(self.check())
        except Exception:  # a probe that cannot answer has not seen the condition
            return False

    def wait(
        self,
        clock: Callable[[], float] = time.monotonic,
        *,
        timeout: float | None = None,
        stop: threading.Event | None = None,
    ) -> float | None:
        """Poll until yes; the `clock()` reading when the yes came back, or None at the
        deadline (or when `stop` is set)."""
        limit = self.timeout if timeout is None else timeout
        return poll(lambda: clock() if self.ask() else None, limit, interval=STEP, stop=stop)

    def with_timeout(self, timeout: float) -> Detector:
        return Detector(
            self.name,
            self.check,
            timeout,
            self.kind,
            self.note,
            self.production_offset,
            self.skipped,
        )


class Polling:
    """Detectors polled in background threads from now on; `join()` gathers their answers."""

    def __init__(self, detectors: list[Detector], clock: Callable[[], float]) -> None:
        self.stop = threading.Event()
        self.answers: dict[int, float | None] = {}
        self.detectors = detectors
        self._threads = [
            threading.Thread(target=self._run, args=(i, d, clock), daemon=True,
                             name=f"detector-{d.name[:20]}")
            for i, d in enumerate(detectors)
        ]  # fmt: skip
        for thread in self._threads:
            thread.start()

    def _run(self, i: int, det: Detector, clock: Callable[[], float]) -> None:
        self.answers[i] = None if det.skipped else det.wait(clock, stop=self.stop)

    def join(self) -> list[Detection]:
        for thread in self._threads:
            thread.join()
        return [Detection(d.name, d.kind, self.answers.get(i))
                for i, d in enumerate(self.detectors)]  # fmt: skip

    def cancel(self) -> None:
        self.stop.set()
        for thread in self._threads:
            thread.join()


def wait_all(detectors: list[Detector], clock: Callable[[], float]) -> list[Detection]:
    """Poll every detector concurrently until each said yes or timed out."""
    return Polling(detectors, clock).join()
