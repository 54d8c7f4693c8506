"""Runbook §5.2.2 case 1: PostgreSQL is not running. SIGKILL the postmaster, watch, recover.

Recovered by §5.2.2 fix 1, "start PostgreSQL", through the Target's `db` service: in the
embedded stack nothing restarts a killed postmaster by itself, so the procedure must."""

from __future__ import annotations

import pytest

from opsdrill.drill import DrillSpec
from opsdrill.drill.standard import StandardDrill
from opsdrill.faults import DbDown
from opsdrill.recovery.database import start_postgres
from opsdrill.targets.base import Target

pytestmark = [
    pytest.mark.destructive,
    pytest.mark.runbook("5.2.2"),
    pytest.mark.runbook("9"),  # its incident record is checked against §9's fields
    pytest.mark.fault("db_down", sig="SIGKILL"),
]


def db_sigkill_spec(drill: StandardDrill) -> DrillSpec:
    """The drill, also run by tests/test_drills_fail.py with its procedure made a no-op."""
    target, probes = drill.target, drill.probes
    alerts, resolved = probes.alert_cycle("DatabaseDown")
    return drill.spec(
        name="db-sigkill",
        title="PostgreSQL killed (SIGKILL of the postmaster)",
        severity="P0",
        fault=DbDown(target, sig="SIGKILL"),
        effect=probes.db_refuses(),
        detectors=[probes.health_is(503, timeout=5), *alerts],
        resolved=resolved,
        recover=start_postgres(target),
    )


def test_db_sigkill_is_detected_and_recovered_without_app_restart(
    target: Target, drill: StandardDrill
) -> None:
    api_pid = target.service("api").pid()
    result = drill.run(db_sigkill_spec(drill))
    assert target.service("api").pid() == api_pid, "the app must recover without a restart"
    assert result.failed_probes > 0, "the availability probe never saw the outage"
    names = [e.name for e in result.timeline.events]
    assert names.index("recovered") < names.index("reverting"), "recovered by the procedure"
    assert [s.step for s in result.timeline.steps][1] == "start PostgreSQL"
