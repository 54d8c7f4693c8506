"""Runbook §5.2.2 case 1: PostgreSQL is not running. SIGKILL the postmaster, watch, recover.

Recovered by §5.2.2 fix 1, "start PostgreSQL", through the Target's `db` service: in the
embedded stack nothing restarts a killed postmaster by itself, so the procedure must."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsdrill.drill import DrillSpec, run_drill
from opsdrill.faults import DbDown
from opsdrill.recovery.procedures import start_postgres
from opsdrill.targets.base import Target

from .conftest import AssertDrill, Probes

pytestmark = [
    pytest.mark.destructive,
    pytest.mark.runbook("5.2.2"),
    pytest.mark.runbook("9"),  # its incident record is checked against §9's fields
    pytest.mark.fault("db_down", sig="SIGKILL"),
]


def db_sigkill_spec(target: Target, probes: Probes) -> DrillSpec:
    """The drill, also run by tests/test_drills_fail.py with its procedure made a no-op."""
    alerts, resolved = probes.alert_cycle("DatabaseDown")
    detectors = [probes.health_is(503, timeout=5), *alerts]
    return DrillSpec(
        name="db-sigkill",
        title="PostgreSQL killed (SIGKILL of the postmaster)",
        runbook="5.2.2",
        severity="P0",
        fault=DbDown(target, sig="SIGKILL"),
        effect=probes.db_refuses(),
        detectors=detectors,
        steady=probes.steady(),
        resolved=resolved,
        recover=start_postgres(target),
        availability_url=f"{target.endpoints.api_url}/health",
        endpoints=target.endpoints,
    )


def test_db_sigkill_is_detected_and_recovered_without_app_restart(
    target: Target, probes: Probes, incident_dir: Path, assert_drill: AssertDrill
) -> None:
    api_pid = target.service("api").pid()
    result = run_drill(db_sigkill_spec(target, probes), incident_dir)
    assert_drill(result)
    assert target.service("api").pid() == api_pid, "the app must recover without a restart"
    assert result.failed_probes > 0, "the availability probe never saw the outage"
    names = [e.name for e in result.timeline.events]
    assert names.index("recovered") < names.index("reverting"), "recovered by the procedure"
    assert [s.step for s in result.timeline.steps][1] == "start PostgreSQL"
