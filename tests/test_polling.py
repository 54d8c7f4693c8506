"""The one polling loop: an answer as soon as it comes, None or a named error at the deadline."""

from __future__ import annotations

import threading
import time

import pytest

from opsdrill.drill import Detector
from opsdrill.errors import OpsdrillError, WaitTimedOut
from opsdrill.polling import poll, wait_for


def test_poll_returns_the_first_answer_and_zero_counts_as_one() -> None:
    answers = iter([None, None, 0, 5])
    assert poll(lambda: next(answers), 5, interval=0.01) == 0


def test_poll_gives_up_at_the_deadline_after_asking_again() -> None:
    asked: list[float] = []
    t0 = time.monotonic()
    assert poll(lambda: asked.append(time.monotonic()), 0.2, interval=0.05) is None
    assert 0.2 <= asked[-1] - t0 < 1.0 and len(asked) >= 3


def test_poll_stops_when_told() -> None:
    stop = threading.Event()
    stop.set()
    t0 = time.monotonic()
    assert poll(lambda: None, 30, stop=stop) is None
    assert time.monotonic() - t0 < 1.0


def test_wait_for_names_what_it_waited_for() -> None:
    with pytest.raises(WaitTimedOut, match=r"waited 0.1 s for the marker file, in vain") as exc:
        wait_for("the marker file", lambda: None, 0.1, interval=0.02)
    assert isinstance(exc.value, OpsdrillError)
    assert wait_for("a number", lambda: 7, 0.1) == 7


def test_detector_wait_reads_the_clock_when_the_answer_came() -> None:
    flips = iter([False, False, True])
    assert Detector("flips", lambda: next(flips), 5).wait(lambda: 42.0) == 42.0
    assert Detector("never", lambda: False, 0.1).wait() is None
