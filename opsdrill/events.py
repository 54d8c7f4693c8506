"""Events raised by library code (faults, drills) that may run outside pytest.

Like Locust's events: listeners subscribe by name; a failing listener is logged, never fatal,
so a broken notifier cannot stop a fault from being reverted. The pytest plugin subscribes and
turns each event into the matching `pytest_opsdrill_*` hook.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from typing import Any

__all__ = ["emit", "subscribe", "unsubscribe"]

log = logging.getLogger("opsdrill.events")
_listeners: dict[str, list[Callable[..., None]]] = defaultdict(list)


def subscribe(event: str, listener: Callable[..., None]) -> None:
    _listeners[event].append(listener)


def unsubscribe(event: str, listener: Callable[..., None]) -> None:
    if listener in _listeners[event]:
        _listeners[event].remove(listener)


def emit(event: str, **kwargs: Any) -> None:
    """Call every listener of `event`; log (and swallow) what a listener raises."""
    for listener in list(_listeners[event]):
        try:
            listener(**kwargs)
        except Exception:
            log.exception("listener %r of %s failed", listener, event)
