"""Runbook §5.2.1 / §5.3.1: the API process is SIGKILLed; restarted the runbook's way.

The restart goes by the pid file (never `pkill -f`), removes the stale pid file the killed
process left, and polls `/health`. ServiceDown must fire and then resolve.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from opsdrill.drill import DrillSpec, run_drill
from opsdrill.faults import AppCrash
from opsdrill.recovery.procedures import restart_app
from opsdrill.recovery.service_restart import app_pid_file
from opsdrill.targets.base import Target

from .conftest import AssertDrill, FaultProbes, Probes

pytestmark = [
    pytest.mark.destructive,
    pytest.mark.runbook("5.3.1"),
    pytest.mark.fault("app_crash", sig="SIGKILL"),
]


def test_app_sigkill_is_detected_and_restarted_by_pid_file(
    target: Target,
    probes: Probes,
    fault_probes: FaultProbes,
    incident_dir: Path,
    assert_drill: AssertDrill,
) -> None:
    old_pid = target.service("api").pid()
    alerts, resolved = probes.alert_cycle("ServiceDown")
    detectors = [fault_probes.api_silent(timeout=5), *alerts]
    spec = DrillSpec(
        name="app-sigkill",
        title="API process killed (SIGKILL)",
        runbook="5.3.1",
        severity="P0",
        fault=AppCrash(target, sig="SIGKILL"),
        effect=fault_probes.api_silent(),
        detectors=detectors,
        steady=[*probes.steady(), fault_probes.no_run_running()],
        resolved=resolved,
        recover=restart_app(target),
        availability_url=f"{target.endpoints.api_url}/health",
        endpoints=target.endpoints,
    )
    result = run_drill(spec, incident_dir)
    assert_drill(result)
    new_pid = target.service("api").pid()
    assert new_pid not in (None, old_pid)
    assert any("removed pid file" in a for a in result.actions), result.actions
    assert app_pid_file(target).read_text().strip() == str(new_pid)
