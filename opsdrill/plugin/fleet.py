"""Checks of one machine run once per host of a fleet (runbook §7: several app servers).

A check that asks for the `machine` fixture looks at one machine: its disk, memory, logs,
processes and units. On a target whose file lists more api hosts, such a check is
parametrized by host (as testinfra does with `--hosts`), its id ends in `[HOST]`, and the
host travels on its reports so the runbook coverage shows each host's result. On a single
machine it runs once, with its usual id.
"""

from __future__ import annotations

import pytest

from opsdrill.errors import OpsdrillError
from opsdrill.plugin.session_target import configured_target
from opsdrill.targets.base import Target

__all__ = ["HOST_KEY", "machine"]

#: the user_properties key naming the host a per-host check ran on
HOST_KEY = "host"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "machine" not in metafunc.fixturenames:
        return
    try:
        fleet = list(configured_target(metafunc.config).fleet())
    except OpsdrillError:
        return  # the session's `target` fixture reports a bad target, once, with its exit code
    if len(fleet) > 1:
        names = [m.name for m in fleet]
        metafunc.parametrize("machine", names, ids=names, indirect=True, scope="session")


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and "machine" in callspec.params:
            item.user_properties.append((HOST_KEY, str(callspec.params["machine"])))


@pytest.fixture(scope="session")
def machine(request: pytest.FixtureRequest, target: Target) -> Target:
    """The machine a check of one machine looks at: the target's own, or in a fleet the host
    this test was parametrized with."""
    name = getattr(request, "param", None)
    if name is None:
        return target
    return next(m for m in target.fleet() if m.name == name)
