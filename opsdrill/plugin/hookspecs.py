"""opsdrill's own pytest hooks. Implement them in a conftest.py or a plugin.

Named `pytest_opsdrill_*` because pytest only collects hook implementations with the
`pytest_` prefix (as pytest-xdist's `pytest_xdist_*`). Keyword arguments only; the docstrings
are the contract. They let a team page a channel when
a drill fails, ship timelines elsewhere, or count faults, without touching opsdrill.
"""

from __future__ import annotations

from typing import Any

import pytest

hookspec = pytest.hookspec


@hookspec
def pytest_opsdrill_fault_injected(fault: Any) -> None:
    """A fault (an `opsdrill.faults.Fault`) has just been injected and journaled."""


@hookspec
def pytest_opsdrill_fault_reverted(fault: Any) -> None:
    """A fault has been reverted and its journal entry removed."""


@hookspec
def pytest_opsdrill_drill_finished(result: Any) -> None:
    """A drill has finished (passed or not); `result` is an `opsdrill.drill.DrillResult`."""
