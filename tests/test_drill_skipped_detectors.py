"""Without Prometheus, a drill's alert detectors are recorded as skipped, not dropped.

They must show on the drill's timeline, in its incident record (Markdown and JSON) and in the
JUnit properties, so that a game day can count what it did not show; and they must neither
pass the drill by themselves (no detection time from a skipped detector) nor fail it.
"""

from __future__ import annotations

import json
import os
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from opsdrill.drill import Detector, DrillSpec, run_drill
from opsdrill.drill.detectors import NO_PROMETHEUS, Probes
from opsdrill.drill.procedure import Procedure, Step
from opsdrill.faults.base import Fault, register
from opsdrill.targets.fake import FakeTarget
from opsdrill.targets.local import LocalTarget


@register
class Marker(Fault):
    """A harmless fault: a file exists while it is active, so the effect is observable."""

    kind = "test_marker_file"

    def _inject(self) -> None:
        Path(self.params["path"]).write_text("broken")

    def _revert(self) -> None:
        Path(self.params["path"]).unlink(missing_ok=True)


@pytest.fixture
def api_url() -> Iterator[str]:
    class Ok(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Ok)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _drill(tmp_path: Path, api_url: str) -> DrillSpec:
    flag = tmp_path / "flag"
    alerts, resolved = Probes(FakeTarget(api_url, services=())).alert_cycle(
        "ServiceDown", timeout=1
    )
    return DrillSpec(
        name="marker",
        title="a marker file appears",
        runbook="5.2.1",
        severity="P3",
        fault=Marker(LocalTarget(tmp_path / "state", worker_cgroup=False), path=str(flag)),
        effect=Detector("the marker exists", flag.exists, 5),
        detectors=[Detector("the marker is seen", flag.exists, 5), *alerts],
        steady=[Detector("no marker", lambda: not flag.exists(), 5)],
        resolved=resolved,
        availability_url=f"{api_url}/health",
        recover=Procedure(
            "5.2.1", "remove the marker", (Step("remove it", lambda: _unlink(flag)),)
        ),
    )


def _unlink(flag: Path) -> str:
    flag.unlink(missing_ok=True)
    return f"removed {flag}"


def test_alert_detectors_without_prometheus_are_recorded_as_skipped(
    tmp_path: Path, api_url: str
) -> None:
    result = run_drill(_drill(tmp_path, api_url), tmp_path / "reports")
    assert result.passed, result.errors
    reason = f"skipped: {NO_PROMETHEUS}"
    assert result.skipped_detectors == [
        f"alert ServiceDown firing: {reason}",
        f"alert ServiceDown resolved: {reason}",
    ]
    names = [e.name for e in result.timeline.events]
    assert "detected_skipped" in names and "resolved_skipped" in names
    detected = result.timeline.first("detected")
    assert detected is not None and detected.detail == "the marker is seen"
    assert result.record_path is not None
    markdown = result.record_path.read_text()
    assert f"| detected_skipped | alert ServiceDown firing: {reason} |" in markdown
    record = json.loads(result.record_path.with_suffix(".json").read_text())
    assert record["skipped_detectors"] == result.skipped_detectors


def test_only_skipped_detectors_never_make_a_detection(tmp_path: Path, api_url: str) -> None:
    spec = _drill(tmp_path, api_url)
    spec.detectors = spec.detectors[1:]  # the alert alone, and it is skipped
    result = run_drill(spec, tmp_path / "reports")
    assert not result.passed, "a drill nothing could detect passed"
    assert result.errors == ["not detected: every detector was skipped on this target"]
    assert result.timeline.first("detected") is None and result.mttd is None
    assert len(result.skipped_detectors) == 2


def test_skipped_detectors_are_junit_properties(
    pytester: pytest.Pytester, api_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = Path(__file__).resolve().parents[1]  # chaos/ and tests/ import from the checkout
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [str(repo), os.environ.get("PYTHONPATH")]))
    )
    pytester.makepyfile(
        test_marker=f"""
        from pathlib import Path
        from opsdrill.drill import run_drill
        from tests.test_drill_skipped_detectors import _drill

        def test_marker(assert_drill, tmp_path):
            assert_drill(run_drill(_drill(tmp_path, {api_url!r}), tmp_path))
        """
    )
    junit = pytester.path / "junit.xml"
    result = pytester.runpytest_subprocess(
        f"--junitxml={junit}", "-o", "junit_family=xunit1", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=1)
    props = {p.get("name"): p.get("value") for p in ET.parse(junit).getroot().iter("property")}
    assert props["skipped_detectors"] == (
        f"alert ServiceDown firing: skipped: {NO_PROMETHEUS}; "
        f"alert ServiceDown resolved: skipped: {NO_PROMETHEUS}"
    )


def test_a_stack_started_without_monitoring_stays_without_prometheus(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`opsdrill up --no-monitoring` is remembered: the plugin's `local:DIR` target then has
    no Prometheus (and starts none), so its drills record the alert detectors as skipped."""
    monkeypatch.delenv("OPSDRILL_MONITORING", raising=False)
    LocalTarget(tmp_path, monitoring=False, worker_cgroup=False).options.save(tmp_path)
    again = LocalTarget(tmp_path)
    assert again.monitoring is False and "prometheus" not in again.services
    assert again.endpoints.prometheus_url is None
    assert not Probes(again).has_prometheus
    monkeypatch.setenv("OPSDRILL_MONITORING", "0")
    fresh = LocalTarget(tmp_path / "fresh", worker_cgroup=False)
    assert fresh.monitoring is False and fresh.endpoints.prometheus_url is None
