"""The `drill` fixture fills a DrillSpec's defaults and fails the test when the drill fails.

Runs a harmless marker-file fault against a tiny HTTP server (no stack needed): the defaults
must be the ones every chaos module used to spell out, and a drill whose procedure does not
recover must fail the test that ran it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from opsdrill.drill import Detector, DrillResult
from opsdrill.drill.procedure import Procedure, Step
from opsdrill.drill.standard import StandardDrill
from opsdrill.targets.fake import FakeTarget
from opsdrill.targets.local import LocalTarget
from tests.test_drill_skipped_detectors import Marker, _unlink, api_url

__all__ = ["api_url"]  # the fixture, imported for this module's tests


def _marker_spec(drill: StandardDrill, tmp_path: Path, *, recovers: bool) -> object:
    flag = tmp_path / "flag"
    step = Step("remove it", lambda: _unlink(flag)) if recovers else Step("look", lambda: "ok")
    return drill.spec(
        name="marker",
        title="a marker file appears",
        severity="P3",
        fault=Marker(LocalTarget(tmp_path / "state", worker_cgroup=False), path=str(flag)),
        effect=Detector("the marker exists", flag.exists, 5),
        detectors=[Detector("the marker is seen", flag.exists, 5)],
        steady=[Detector("no marker", lambda: not flag.exists(), 5)],
        recover=Procedure("5.2.1", "remove the marker", (step,)),
        recovery_timeout=2,
        endpoints=None,  # no database behind this target: no integrity snapshot
    )


def test_spec_fills_runbook_availability_endpoints_and_standard_steady_state(
    api_url: str,
) -> None:
    target = FakeTarget(api_url, services=())
    drill = StandardDrill(target, "5.2.2")
    spec = drill.spec(name="n", title="t", severity="P1", fault=None, effect=None, detectors=[])
    assert spec.runbook == "5.2.2"
    assert spec.availability_url == f"{api_url}/health"
    assert spec.endpoints is target.endpoints and spec.dsn is None
    assert [d.name for d in spec.steady] == ["/health answers 200", "a forecast succeeds"]
    extra = Detector("also", lambda: True)
    more = drill.spec(name="n", title="t", severity="P1", fault=None, effect=None, detectors=[],
                      also_steady=[extra], runbook="3.1.3", dsn="postgresql://x")  # fmt: skip
    assert more.steady[-1] is extra and len(more.steady) == 3
    assert more.runbook == "3.1.3", "a spec's own runbook section wins over the marker's"
    assert more.endpoints is None and more.dsn == "postgresql://x", "dsn alone: as before"


def test_run_fails_when_the_procedure_does_not_recover(tmp_path: Path, api_url: str) -> None:
    checked: list[DrillResult] = []
    drill = StandardDrill(FakeTarget(api_url, services=()), "5.2.1", tmp_path, checked.append)
    ok = drill.run(_marker_spec(drill, tmp_path, recovers=True))  # type: ignore[arg-type]
    assert ok.passed and checked == [ok]
    bare = StandardDrill(FakeTarget(api_url, services=()), "5.2.1", tmp_path)
    with pytest.raises(AssertionError, match="recovery incomplete"):
        bare.run(_marker_spec(bare, tmp_path, recovers=False))  # type: ignore[arg-type]


def test_fixture_takes_the_runbook_section_from_the_tests_marker(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = Path(__file__).resolve().parents[1]
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [str(repo), os.environ.get("PYTHONPATH")]))
    )
    pytester.makepyfile(
        test_marked="""
        import pytest
        from opsdrill.targets.fake import FakeTarget

        @pytest.fixture
        def target():
            return FakeTarget("http://127.0.0.1:9", services=())

        @pytest.fixture
        def incident_dir(tmp_path):
            return tmp_path

        pytestmark = [pytest.mark.runbook("5.2.2"), pytest.mark.runbook("9")]

        def test_module_marker(drill):
            assert drill.runbook == "5.2.2"

        @pytest.mark.runbook("5.2.5")
        def test_own_marker(drill):
            assert drill.runbook == "5.2.5"

        def test_wrong(drill):
            assert drill.runbook == "9"
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=1)
