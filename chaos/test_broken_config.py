"""Runbook §5.2.1: after a bad edit of `conf/config.yaml` the app refuses to start.

Diagnosed with the app's own `--check-config`, which must name the file and the line;
fixed by moving the broken file aside (kept with the incident record), checking the config
again, and restarting by §5.3.1.
"""

from __future__ import annotations

import pytest

from opsdrill.drill import Detector
from opsdrill.drill.standard import StandardDrill
from opsdrill.faults import BrokenConfig
from opsdrill.faults.broken_config import check_config
from opsdrill.recovery.config import correct_config
from opsdrill.targets.base import Target

pytestmark = [
    pytest.mark.destructive,
    pytest.mark.runbook("5.2.1"),
    pytest.mark.fault("broken_config"),
]


def test_broken_config_is_named_by_check_config_and_fixed(
    target: Target,
    drill: StandardDrill,
) -> None:
    fault = BrokenConfig(target)
    diagnosis: list[str] = []

    def refused() -> bool:
        done = check_config(target)
        diagnosis[:] = [done.stderr.strip()]
        return done.returncode != 0 and str(fault.path) in done.stderr

    kept = drill.incident_dir / "incidents" / "rejected-config.yaml"
    recover = correct_config(target, lambda: check_config(target), fault.path, kept)
    alerts, resolved = drill.probes.alert_cycle("ServiceDown")  # the app is down
    spec = drill.spec(
        name="broken-config",
        title="API refuses to start: config file does not parse",
        severity="P0",
        fault=fault,
        effect=Detector("the app's start is refused", lambda: bool(fault.start_error), 5),
        detectors=[
            drill.faults.api_silent(),
            Detector("--check-config names the broken file", refused, 30),
            *alerts,
        ],
        also_steady=[drill.faults.no_run_running()],
        recover=recover,
        resolved=resolved,
    )
    drill.run(spec)
    assert "does not parse at line" in diagnosis[0], diagnosis
    assert "config error" in (fault.start_error or ""), fault.start_error
