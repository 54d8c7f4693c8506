"""Runbook §5.2.2 case 2: idle sessions hold every connection slot; the app's pool is empty.

Fixed the runbook's way: terminate the sessions idle for too long (the runbook's hour is a
second here, as the embedded stack's alert durations are scaled down).
"""

from __future__ import annotations

import pytest

from opsdrill.drill.standard import StandardDrill
from opsdrill.faults import PoolExhaustion
from opsdrill.recovery.database import terminate_idle_sessions
from opsdrill.runbook.dashboard_panels import panel_detector
from opsdrill.targets.base import Target

pytestmark = [
    pytest.mark.destructive,
    pytest.mark.runbook("5.2.2"),
    pytest.mark.runbook("4.1.1"),  # the dashboard's DB connections panel shows the symptom
    pytest.mark.fault("pool_exhaustion"),
]


def test_exhausted_connections_are_found_and_freed_by_terminating_idle_sessions(
    target: Target,
    drill: StandardDrill,
) -> None:
    api_pid = target.service("api").pid()
    fault = PoolExhaustion(target)

    spec = drill.spec(
        name="pool-exhaustion",
        title="Database connections exhausted by idle sessions",
        severity="P1",
        fault=fault,
        effect=drill.faults.db_refuses_app_role(),
        detectors=[
            drill.probes.health_is(503),
            drill.faults.pool_probe_failing(),
            # the runbook's dashboard (§4.1.1) shows it: sessions pile up past 50
            panel_detector(target.endpoints.prometheus_url, "DB connections", "B", 50),
        ],
        also_steady=[drill.faults.no_run_running()],
        recover=terminate_idle_sessions(target, idle_for=1.0),
        hold=1.0,  # every fault session idle for longer than the threshold
    )
    result = drill.run(spec)
    assert fault.entry.undo["held"] > 50, "the slots must have been held by real sessions"
    assert any("terminated" in a and "opsdrill-fault" in a for a in result.actions)
    assert target.service("api").pid() == api_pid, "the app must recover without a restart"
