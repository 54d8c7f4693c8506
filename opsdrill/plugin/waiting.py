"""The tests' one wait: opsdrill's polling loop, failing the test with what never happened.

An exception from the condition counts as "not yet" (a service that is down refuses
connections), and the last one is named in the failure, so a broken condition is not
mistaken for a slow one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import pytest

from opsdrill.polling import poll

__all__ = ["first", "until"]

T = TypeVar("T")


def first(
    condition: Callable[[], T | None],
    timeout: float,
    what: str = "the condition",
    *,
    interval: float = 0.05,
) -> T:
    """`condition()`'s first truthy answer; the test fails naming `what` at the deadline."""
    last: list[BaseException] = []

    def answer() -> T | None:
        try:
            return condition() or None
        except Exception as exc:
            last[:] = [exc]
            return None

    got = poll(answer, timeout, interval=interval)
    if got is None:
        why = f" (last error: {type(last[0]).__name__}: {last[0]})" if last else ""
        pytest.fail(f"{what} did not happen within {timeout:g} s{why}")
    return got


def until(
    condition: Callable[[], object],
    timeout: float,
    what: str = "the condition",
    *,
    interval: float = 0.05,
) -> float:
    """Seconds until `condition()` was truthy; the test fails naming `what` at the deadline."""
    start = time.monotonic()
    first(condition, timeout, what, interval=interval)
    return time.monotonic() - start
