"""Runbook §5.2.1 / §5.3.1: the API process is SIGKILLed; restarted the runbook's way.

The restart goes by the pid file (never `pkill -f`), removes the stale pid file the killed
process left, and polls `/health`. ServiceDown must fire and then resolve.
"""

from __future__ import annotations

import pytest

from opsdrill.faults import AppCrash
from opsdrill.recovery.procedures import restart_app
from opsdrill.recovery.service_restart import app_pid_file
from opsdrill.targets.base import Target

from .conftest import StandardDrill

pytestmark = [
    pytest.mark.destructive,
    pytest.mark.runbook("5.3.1"),
    pytest.mark.fault("app_crash", sig="SIGKILL"),
]


def test_app_sigkill_is_detected_and_restarted_by_pid_file(
    target: Target,
    drill: StandardDrill,
) -> None:
    old_pid = target.service("api").pid()
    alerts, resolved = drill.probes.alert_cycle("ServiceDown")
    spec = drill.spec(
        name="app-sigkill",
        title="API process killed (SIGKILL)",
        severity="P0",
        fault=AppCrash(target, sig="SIGKILL"),
        effect=drill.faults.api_silent(),
        detectors=[drill.faults.api_silent(timeout=5), *alerts],
        also_steady=[drill.faults.no_run_running()],
        resolved=resolved,
        recover=restart_app(target),
    )
    result = drill.run(spec)
    new_pid = target.service("api").pid()
    assert new_pid not in (None, old_pid)
    assert any("removed pid file" in a for a in result.actions), result.actions
    assert app_pid_file(target).read_text().strip() == str(new_pid)
