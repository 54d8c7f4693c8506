"""The production guard: what may run against the target, decided at collection.

On a target that says `production = true`:
- `destructive` is refused always: `--allow-destructive` never lifts it there (a production
  game day needs a target file that says `production = false`, deliberately);
- `sandbox` (writes) is refused;
- `load` is refused unless `--allow-load-on-production`;
- a test that reaches the target (through `target`, or `api`, `db`, `host`, … built on it)
  and carries none of `readonly`, `sandbox`, `destructive`, `load` fails the collection of
  its module (exit code 2): an unmarked test is not assumed harmless.

On any target, `destructive` needs `--allow-destructive`, and a drill whose fault (its
`@pytest.mark.fault(kind, …)`) needs a capability the target lacks is refused with one
sentence naming it. Refusals are skips carrying their reason, never silent.
"""

from __future__ import annotations

from collections.abc import Generator

import pytest

from opsdrill.errors import OpsdrillError
from opsdrill.faults import REGISTRY
from opsdrill.faults.base import JOURNAL
from opsdrill.plugin.session_target import configured_target
from opsdrill.targets.base import Target

__all__ = ["GUARD_MARKERS", "refusal"]

#: the markers that say what a test does to the target; one of them is required on production
GUARD_MARKERS = ("readonly", "sandbox", "destructive", "load")


UNMARKED = "unmarked test would touch production: mark it readonly, sandbox, destructive or load"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("opsdrill").addoption(
        "--allow-load-on-production", action="store_true", default=False,
        help="run tests marked load against a production target (refused there otherwise)",
    )  # fmt: skip


def refusal(item: pytest.Item, target: Target, config: pytest.Config) -> str | None:
    """Why `item` may not run against `target`, or None when it may."""
    marks = _marks(item)
    where = f"production target {target.name!r}"
    if target.production and "destructive" in marks:
        return (
            f"refused on {where}: destructive tests never run on production, even with "
            "--allow-destructive; a production game day needs a target file that says "
            "production = false"
        )
    if target.production and "sandbox" in marks:
        return f"refused on {where}: this test writes, so it needs a throwaway copy of the stack"
    if target.production and "load" in marks and not config.getoption("allow_load_on_production"):
        return f"refused on {where}: this test sends load; pass --allow-load-on-production"
    if "destructive" in marks and not config.getoption("allow_destructive"):
        return "destructive: pass --allow-destructive to run it"
    return _missing_capability(item, target)


def _missing_capability(item: pytest.Item, target: Target) -> str | None:
    fault = item.get_closest_marker("fault")
    if fault is None or not fault.args:
        return None
    kind = str(fault.args[0])
    fault_class = REGISTRY.get(kind)
    needs = fault_class.needs if fault_class is not None else JOURNAL
    missing = sorted(needs - target.capabilities)
    if not missing:
        return None
    return (
        f"drill {item.name} ({kind}) needs {', '.join(missing)}, which target "
        f"{target.name!r} does not offer"
    )


def _marks(item: pytest.Item) -> set[str]:
    return {m for m in GUARD_MARKERS if item.get_closest_marker(m)}


def _touches_target(item: pytest.Item) -> bool:
    return "target" in getattr(item, "fixturenames", ())


def _target_or_error(config: pytest.Config) -> Target | str:
    """The session's target, or why it cannot be built (said once per collector)."""
    try:
        return configured_target(config)
    except OpsdrillError as exc:
        return f"opsdrill: target {config.getoption('--target')!r} is not usable: {exc}"


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(
    collector: pytest.Collector,
) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
    """Fail the collection of a module with an unmarked test that would touch production.

    A collection error rather than `pytest.exit`, so it is reported the same way with or
    without xdist (an exit inside a worker only crashes it) and names the module.
    """
    report: pytest.CollectReport = yield
    items = [x for x in report.result if isinstance(x, pytest.Item)] if report.passed else []
    guarded = [i for i in items if _touches_target(i) or _marks(i)]
    if not guarded:
        return report
    target = _target_or_error(collector.config)
    if isinstance(target, str):
        problem = target
    elif unmarked := [i.name for i in guarded if target.production and not _marks(i)]:
        problem = (
            f"opsdrill: {UNMARKED} (target {target.name!r} says production = true): "
            + ", ".join(unmarked)
        )
    else:
        return report
    report.outcome, report.longrepr, report.result = "failed", problem, []
    return report


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    guarded = [i for i in items if _touches_target(i) or _marks(i)]
    target = _target_or_error(config) if guarded else None
    if not isinstance(target, Target):
        return  # nothing to guard, or collection already failed saying why
    for item in guarded:
        if reason := refusal(item, target, config):
            item.add_marker(pytest.mark.skip(reason=reason))
