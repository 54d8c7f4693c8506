"""The fixtures drills use: the standard detectors (`opsdrill.drill.detectors`), a `drill`
that fills every DrillSpec default (`opsdrill.drill.standard`), `assert_drill`, and the parts a
drill puts in place for itself (`proxy_hops`, `data_fs`).

Part of the plugin, not of a conftest, so a suite of the user's own gets them with opsdrill
installed, as pytest's own fixtures come with pytest.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import pytest

from opsdrill.drill import DrillResult
from opsdrill.drill.detectors import FaultProbes, Probes
from opsdrill.drill.standard import StandardDrill
from opsdrill.errors import CapabilityMissing
from opsdrill.targets.base import ProxyHops, Target

__all__ = ["INCIDENT_SECTIONS", "AssertDrill"]


@pytest.fixture(scope="session")
def probes(target: Target) -> Probes:
    return Probes(target)


# -- parts the drills put in place themselves when the stack lacks them -------------------------

#: the data filesystem the disk-full drill gets on a stack started without one
DATA_FS_SIZE = "64m"


def _announcer(config: pytest.Config) -> Callable[[str], None]:
    """One line on the terminal (not captured): the session changes the stack's wiring."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")

    def say(line: str) -> None:
        if reporter is None or capture is None:
            print(f"opsdrill: {line}")
            return
        with capture.global_and_fixture_disabled():
            reporter.write_line(f"opsdrill: {line}")

    return say


@contextlib.contextmanager
def _drill_part(make: Callable[[], AbstractContextManager[object]]) -> Iterator[object]:
    """Enter what `make` builds for the session; a target that cannot provide it skips."""
    with contextlib.ExitStack() as stack:
        try:
            part = stack.enter_context(make())
        except CapabilityMissing as exc:
            pytest.skip(str(exc))
        yield part


@pytest.fixture(scope="session")
def proxy_hops(target: Target, request: pytest.FixtureRequest) -> Iterator[ProxyHops]:
    """Toxiproxy between app and database and before the API, put in place for the session
    when the stack was started without it, and taken out again at its end."""
    say = _announcer(request.config)
    with _drill_part(lambda: target.ensure_proxy(say)) as hops:
        assert isinstance(hops, ProxyHops)
        yield hops


@pytest.fixture(scope="session")
def data_fs(target: Target, request: pytest.FixtureRequest) -> Iterator[Path]:
    """The app's data directory on a size-limited filesystem for the session (put in place
    when the stack was started without one, and moved back at its end)."""
    say = _announcer(request.config)
    with _drill_part(lambda: target.ensure_data_fs(DATA_FS_SIZE, say)) as home:
        assert isinstance(home, Path)
        yield home


@pytest.fixture(scope="session")
def incident_dir(reports_dir: Path) -> Path:
    return reports_dir


AssertDrill = Callable[[DrillResult], None]


@pytest.fixture
def assert_drill(record_property: Callable[[str, object], None]) -> AssertDrill:
    """Assert a drill passed, print its figures, and attach MTTD/MTTR to the JUnit report."""

    def check(result: DrillResult) -> None:
        record_property("mttd_seconds", result.mttd)
        record_property("mttd_alert_seconds", result.mttd_alert)
        record_property("mttd_probe_seconds", result.mttd_probe)
        record_property("mttr_seconds", result.mttr)
        record_property("incident_record", str(result.record_path))
        record_property("skipped_detectors", "; ".join(result.skipped_detectors))
        print(
            f"{result.spec.name}: MTTD {result.mttd} s (alert {result.mttd_alert} s, at "
            f"production scale {result.mttd_alert_production} s; probe {result.mttd_probe} s), "
            f"MTTR {result.mttr} s by {result.recovered_by or 'nothing'}, "
            f"{result.failed_probes}/{result.total_probes} probes failed; {result.record_path}"
        )
        for skipped in result.skipped_detectors:
            print(f"  detector {skipped}")
        assert result.passed, "\n".join(result.errors) + f"\nincident record: {result.record_path}"
        if result.record_path is not None:
            text = result.record_path.read_text()
            missing = [s for s in INCIDENT_SECTIONS if s not in text]
            assert not missing, f"incident record lacks runbook §9 parts {missing}: {text[:300]}"

    return check


#: what runbook §9 says an incident record holds (ID and severity are in the header table)
INCIDENT_SECTIONS = ("# Incident INC-", "| severity |", "| detected |", "| resolved |",
                     "## Summary", "## Impact", "## Timeline", "## Root cause",
                     "## Actions taken")  # fmt: skip


@pytest.fixture(scope="session")
def fault_probes(target: Target) -> FaultProbes:
    return FaultProbes(target)


@pytest.fixture
def drill(
    target: Target, incident_dir: Path, assert_drill: AssertDrill, request: pytest.FixtureRequest
) -> StandardDrill:
    """The test's drill with its defaults filled: its runbook section from the test's (first,
    closest) `runbook` marker, the availability URL, the endpoints, the standard steady state;
    `drill.run(spec)` asserts what `assert_drill` does."""
    marker = request.node.get_closest_marker("runbook")
    if marker is None:
        raise pytest.UsageError(f"{request.node.nodeid} uses `drill` but has no runbook marker")
    return StandardDrill(target, str(marker.args[0]), incident_dir, assert_drill)
