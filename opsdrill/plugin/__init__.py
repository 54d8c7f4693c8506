"""The pytest plugin (entry point `pytest11: opsdrill`): options, markers and the target.

Kept thin in the manner of pytest's own plugins: it parses options, registers markers, and
registers the feature modules; the session's `target` lives in `session_target.py`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from opsdrill import events
from opsdrill.plugin import hookspecs
from opsdrill.plugin.coverage import RunbookCoverage
from opsdrill.plugin.textfile import TextfileExporter

_BRIDGES = pytest.StashKey[dict[str, Callable[..., None]]]()

MARKERS = (
    "runbook(procedure_id): the runbook procedure (e.g. '3.1.1') this test makes executable",
    "readonly: only reads the target; safe on production (a writing mark beside it wins)",
    "destructive: injects a fault or changes state; needs --allow-destructive, never production",
    "sandbox: writes, so it needs a throwaway copy (the embedded stack or a cloned database)",
    "load: sends load; on production only with --allow-load-on-production",
    "slow: takes more than a few seconds; deselect with -m 'not slow'",
    "gpu: needs CUDA; skipped with the reason where there is none",
    "fault(kind, **params): the fault a drill injects (its Fault.kind), shown by --plan",
)
#: --plan and --chaos-seed; --coverage-min; the session's `target` (reused as it is, never
#: repaired); per-host checks in a fleet; the production guard (which marks may run where,
#: refused at collection)
pytest_plugins = [
    "opsdrill.plugin.chaos_options",
    "opsdrill.plugin.coverage",
    "opsdrill.plugin.session_target",
    "opsdrill.plugin.fleet",
    "opsdrill.plugin.safety",
]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("opsdrill")
    group.addoption(
        "--target", default="local", metavar="SPEC",
        help="stack under test: 'local' (embedded stack in .opsdrill/) or 'local:STATE_DIR'",
    )  # fmt: skip
    group.addoption(
        "--allow-destructive", action="store_true", default=False,
        help="run tests marked destructive (never on a production target, whatever is passed)",
    )  # fmt: skip
    group.addoption(
        "--prometheus-textfile", default=None, metavar="PATH",
        help="also write results as Prometheus text (node exporter textfile collector)",
    )  # fmt: skip
    group.addoption(
        "--opsdrill-reports", default="reports", metavar="DIR",
        help="where reports and incident records are written (default: reports/)",
    )  # fmt: skip


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hookspecs)


_FIXTURES = ("opsdrill.plugin.clients", "opsdrill.plugin.drills")
_EVENTS = ("fault_injected", "fault_reverted", "drill_finished")


def _bridge(config: pytest.Config, event: str) -> Callable[..., None]:
    """Turn a library event into the matching `pytest_opsdrill_<event>` hook call."""
    hook = getattr(config.hook, f"pytest_opsdrill_{event}")
    return lambda **kwargs: hook(**kwargs)


def pytest_configure(config: pytest.Config) -> None:
    for line in MARKERS:
        config.addinivalue_line("markers", line)
    bridges = {e: _bridge(config, e) for e in _EVENTS}
    for event, listener in bridges.items():
        events.subscribe(event, listener)
    config.stash[_BRIDGES] = bridges
    # the fixtures users need, registered after every entry-point plugin so that `host`
    # overrides testinfra's (the last registered definition of a fixture wins)
    for name in _FIXTURES:
        config.pluginmanager.import_plugin(name)
    config.pluginmanager.register(RunbookCoverage(config), "opsdrill-coverage")
    if textfile := config.getoption("--prometheus-textfile"):
        config.pluginmanager.register(TextfileExporter(Path(textfile)), "opsdrill-smoke")


def pytest_unconfigure(config: pytest.Config) -> None:
    for event, listener in config.stash.get(_BRIDGES, {}).items():
        events.unsubscribe(event, listener)


@pytest.fixture(scope="session")
def reports_dir(request: pytest.FixtureRequest) -> Path:
    """Where this session's reports go; created on first use."""
    path = Path(request.config.getoption("--opsdrill-reports")).absolute()
    path.mkdir(parents=True, exist_ok=True)
    return path
