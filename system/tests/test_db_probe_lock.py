"""The app's single-flight database probe never deadlocks on its own lock.

Found in a game day: /health hung for good, every request thread blocked on the probe lock.
A stuck probe is abandoned and its completion counted (`_unstick`) by a done-callback; when
the stuck probe finished between the staleness check and the callback's registration, the
callback ran at once, in the caller, which still held the (non-reentrant) lock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path

import pytest
from nf_auto_runner import config as app_config
from nf_auto_runner import db as app_db


class _FinishedAsChecked(Future):  # type: ignore[type-arg]
    """A probe that finished just after the caller saw it running: `done()` still said no."""

    def done(self) -> bool:
        return False


@pytest.fixture
def database(tmp_path: Path) -> Iterator[app_db.Database]:
    """The app's Database as it builds it, on a port nothing listens on (its pool's background
    connection attempts fail; nothing here needs a database)."""
    nowhere = "postgresql://nobody@127.0.0.1:1/none"
    settings = app_config.load(
        {"NF_HOME": str(tmp_path), "DATABASE_URL": nowhere, "NF_API_KEY": "k" * 16}
    )
    found = app_db.Database(settings)
    yield found
    found.pool.close(timeout=1.0)


def test_a_stuck_probe_finishing_during_its_abandonment_does_not_deadlock(
    database: app_db.Database,
) -> None:
    database._probe_once = lambda: app_db.ProbeResult(True, 1.0)  # type: ignore[method-assign]
    stuck = _FinishedAsChecked()
    stuck.set_result(app_db.ProbeResult(True, 1.0))
    database._probe_future = stuck
    database._probe_started = time.monotonic() - app_db.PROBE_ABANDON - 1  # stale

    answered: list[app_db.ProbeResult] = []
    caller = threading.Thread(target=lambda: answered.append(database.probe()), daemon=True)
    caller.start()
    caller.join(timeout=5)
    assert not caller.is_alive(), "probe() deadlocked on its own lock"
    assert answered and answered[0].ok, answered
    assert database._stuck == 0, "the abandoned probe finished: nothing counts as stuck"
