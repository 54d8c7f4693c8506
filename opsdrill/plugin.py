"""The pytest plugin (entry point `pytest11: opsdrill`): options, markers and the target.

Kept thin in the manner of pytest's own plugins: it parses options, registers markers, and
hands out one session-scoped `target`; features live in their own modules.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from opsdrill.errors import OpsdrillError
from opsdrill.exitcodes import ExitCode

_BRIDGES = pytest.StashKey[dict[str, Callable[..., None]]]()

MARKERS = (
    "runbook(procedure_id): the runbook procedure (e.g. '3.1.1') this test makes executable",
    "destructive: injects a fault or changes state; needs --allow-destructive, never production",
    "sandbox: writes, so it needs a throwaway copy (the embedded stack or a cloned database)",
    "slow: takes more than a few seconds; deselect with -m 'not slow'",
    "gpu: needs CUDA; skipped with the reason where there is none",
    "fault(kind, **params): the fault a drill injects (its Fault.kind), shown by --plan",
)
#: --plan and --chaos-seed (opsdrill/chaos_plan.py); --coverage-min (opsdrill/coverage.py)
pytest_plugins = ["opsdrill.chaos_plan", "opsdrill.coverage"]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("opsdrill")
    group.addoption(
        "--target", default="local", metavar="SPEC",
        help="stack under test: 'local' (embedded stack in .opsdrill/) or 'local:STATE_DIR'",
    )  # fmt: skip
    group.addoption(
        "--allow-destructive", action="store_true", default=False,
        help="run tests marked destructive (refused on production targets regardless)",
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
    from opsdrill import hookspecs

    pluginmanager.add_hookspecs(hookspecs)


_EVENTS = ("fault_injected", "fault_reverted", "drill_finished")


def _bridge(config: pytest.Config, event: str) -> Callable[..., None]:
    """Turn a library event into the matching `pytest_opsdrill_<event>` hook call."""
    hook = getattr(config.hook, f"pytest_opsdrill_{event}")
    return lambda **kwargs: hook(**kwargs)


def pytest_configure(config: pytest.Config) -> None:
    for line in MARKERS:
        config.addinivalue_line("markers", line)
    from opsdrill import events

    bridges = {e: _bridge(config, e) for e in _EVENTS}
    for event, listener in bridges.items():
        events.subscribe(event, listener)
    config.stash[_BRIDGES] = bridges
    from opsdrill.coverage import RunbookCoverage

    config.pluginmanager.register(RunbookCoverage(config), "opsdrill-coverage")
    if textfile := config.getoption("--prometheus-textfile"):
        from opsdrill.smoke import TextfileExporter

        config.pluginmanager.register(TextfileExporter(Path(textfile)), "opsdrill-smoke")


def pytest_unconfigure(config: pytest.Config) -> None:
    from opsdrill import events

    for event, listener in config.stash.get(_BRIDGES, {}).items():
        events.unsubscribe(event, listener)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    allow = config.getoption("--allow-destructive")
    skip = pytest.mark.skip(reason="destructive: pass --allow-destructive to run it")
    for item in items:
        if item.get_closest_marker("destructive") and not allow:
            item.add_marker(skip)


class _SessionTarget:
    """Owns the target for the session: reuses a running stack, or starts one and stops it."""

    def __init__(self, spec: str, allow_destructive: bool) -> None:
        from opsdrill.targets import parse_spec

        self.target = parse_spec(spec)
        self.target.allow_destructive = allow_destructive
        self.started_here = False

    def __enter__(self) -> _SessionTarget:
        from opsdrill.targets.local import LocalTarget

        if isinstance(self.target, LocalTarget):
            from opsdrill.faults.rollback import rollback

            rollback(self.target, say=lambda line: print(f"opsdrill: {line}"))
            # reuse a stack whose processes run, healthy or not: an unhealthy service is
            # what the checks are there to report; start (and later stop) only a stopped one
            if not any(s.is_running() for s in self.target.services.values()):
                self.started_here = True
            if not self.target.is_up():
                self.target.up(say=lambda _line: None)
        else:
            _require_reachable(self.target.endpoints.api_url)
        return self

    def __exit__(self, *exc: object) -> None:
        from opsdrill.targets.local import LocalTarget

        if self.started_here and isinstance(self.target, LocalTarget):
            self.target.down(say=lambda _line: None)


def _require_reachable(api_url: str) -> None:
    """Any HTTP answer will do (a 503 is a finding); no answer at all ends the session."""
    import httpx

    from opsdrill.errors import TargetUnreachable

    try:
        httpx.get(f"{api_url}/health", timeout=5)
    except httpx.HTTPError as exc:
        raise TargetUnreachable(
            f"the API at {api_url} does not answer ({type(exc).__name__}): check the URL in "
            "the target file and that the service is reachable from here"
        ) from None


@pytest.fixture(scope="session")
def target(request: pytest.FixtureRequest) -> Iterator[object]:
    """The stack under test (see `opsdrill.targets.base.Target`)."""
    spec = request.config.getoption("--target")
    try:
        owner = _SessionTarget(spec, request.config.getoption("--allow-destructive")).__enter__()
    except OpsdrillError as exc:
        pytest.exit(f"opsdrill: target {spec!r} is not usable: {exc}", returncode=ExitCode.USAGE)
    try:
        yield owner.target
    finally:
        owner.__exit__()


@pytest.fixture(autouse=True)
def _production_guard(request: pytest.FixtureRequest) -> None:
    """On a production target only read-only tests run; the rest skip and say why."""
    if "target" not in request.fixturenames:
        return
    node = request.node
    if not (node.get_closest_marker("sandbox") or node.get_closest_marker("destructive")):
        return
    tgt = request.getfixturevalue("target")
    if getattr(tgt, "production", False):
        pytest.skip(f"refused on production target {tgt.name!r}: this test writes to the stack")


@pytest.fixture(scope="session")
def reports_dir(request: pytest.FixtureRequest) -> Path:
    """Where this session's reports go; created on first use."""
    path = Path(request.config.getoption("--opsdrill-reports")).absolute()
    path.mkdir(parents=True, exist_ok=True)
    return path
