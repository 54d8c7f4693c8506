"""Chaos-run options: `--plan` (print what each drill would do, run nothing) and
`--chaos-seed` (every random choice of a drill comes from it; printed so a run can be
replayed). Registered by `opsdrill.plugin`; the hooks live here, the logic in `plan.py`.

Also: during a session SIGTERM unwinds like Ctrl-C, so a drill's `finally` reverts its fault
before pytest exits (pytest's default is to die on the spot and leave it to the journal).
"""

from __future__ import annotations

import random
import signal
import threading
from typing import Any

import pytest

from opsdrill.plugin.drill_plan import plan_for, render

__all__ = ["chaos_rng", "chaos_seed"]

_PREVIOUS = pytest.StashKey[Any]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("opsdrill")
    group.addoption(
        "--plan", action="store_true", default=False,
        help="print each drill's fault, target, blast radius and undo; run nothing",
    )  # fmt: skip
    group.addoption(
        "--chaos-seed", type=int, default=None, metavar="N",
        help="seed for the drills' random choices (default: random, printed at start)",
    )  # fmt: skip


def _terminate(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("--chaos-seed") is None:
        config.option.chaos_seed = random.SystemRandom().randrange(1, 2**31)
    if threading.current_thread() is threading.main_thread():
        config.stash[_PREVIOUS] = signal.signal(signal.SIGTERM, _terminate)


def pytest_unconfigure(config: pytest.Config) -> None:
    if _PREVIOUS in config.stash and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, config.stash[_PREVIOUS])


def pytest_report_header(config: pytest.Config) -> str:
    seed = config.getoption("--chaos-seed")
    return f"opsdrill chaos seed: {seed} (replay with --chaos-seed {seed})"


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.getoption("--plan"):
        return
    target = config.getoption("--target")
    text = render([plan_for(item, target) for item in items])
    config.get_terminal_writer().line(text)


def pytest_runtestloop(session: pytest.Session) -> bool | None:
    """With --plan, the session ends after collection: no fixture, no test, no target."""
    return True if session.config.getoption("--plan") else None


@pytest.fixture(scope="session")
def chaos_seed(request: pytest.FixtureRequest) -> int:
    """The session's seed (see --chaos-seed)."""
    return int(request.config.getoption("--chaos-seed"))


@pytest.fixture
def chaos_rng(chaos_seed: int, request: pytest.FixtureRequest) -> random.Random:
    """A Random per test, derived from the seed and the test id: replayable one by one."""
    return random.Random(f"{chaos_seed}:{request.node.nodeid}")
