"""The one polling loop: ask until an answer or a deadline, never a sleep standing in for one.

`poll` returns the first answer that is not None (or None at the deadline); `wait_for`
raises `WaitTimedOut` naming what it waited for. Detectors, the run pollers, the targets'
readiness waits and the test helpers all build on these two.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

from opsdrill.errors import WaitTimedOut

__all__ = ["poll", "wait_for"]

T = TypeVar("T")


def poll(
    answer: Callable[[], T | None],
    timeout: float,
    *,
    interval: float = 0.25,
    stop: threading.Event | None = None,
) -> T | None:
    """Call `answer` every `interval` seconds until it returns something other than None;
    that, or None once `timeout` seconds have passed (or `stop` is set). It is always asked
    at least once, and once more after the deadline is known to have passed."""
    deadline = time.monotonic() + timeout
    while True:
        got = answer()
        if got is not None:
            return got
        if time.monotonic() >= deadline or (stop is not None and stop.is_set()):
            return None
        if stop is not None:
            stop.wait(interval)
        else:
            time.sleep(interval)


def wait_for(what: str, answer: Callable[[], T | None], timeout: float, *,
             interval: float = 0.25) -> T:  # fmt: skip
    """`poll`, raising `WaitTimedOut` that names `what` when no answer came in time."""
    got = poll(answer, timeout, interval=interval)
    if got is None:
        raise WaitTimedOut(f"waited {timeout:g} s for {what}, in vain")
    return got
