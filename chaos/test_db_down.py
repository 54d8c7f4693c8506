"""Runbook §5.2.2 case 1: PostgreSQL is not running. SIGKILL the postmaster, watch, recover."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsdrill.drill import DrillSpec, run_drill
from opsdrill.faults import DbDown
from opsdrill.targets.base import Target

from .conftest import AssertDrill, Probes

pytestmark = [
    pytest.mark.destructive,
    pytest.mark.runbook("5.2.2"),
    pytest.mark.runbook("9"),  # its incident record is checked against §9's fields
    pytest.mark.fault("db_down", sig="SIGKILL"),
]


def test_db_sigkill_is_detected_and_recovered_without_app_restart(
    target: Target, probes: Probes, incident_dir: Path, assert_drill: AssertDrill
) -> None:
    api_pid = target.service("api").pid()
    alerts, resolved = probes.alert_cycle("DatabaseDown")
    detectors = [probes.health_is(503, timeout=5), *alerts]
    spec = DrillSpec(
        name="db-sigkill",
        title="PostgreSQL killed (SIGKILL of the postmaster)",
        runbook="5.2.2",
        severity="P0",
        fault=DbDown(target, sig="SIGKILL"),
        effect=probes.db_refuses(),
        detectors=detectors,
        steady=probes.steady(),
        resolved=resolved,
        availability_url=f"{target.endpoints.api_url}/health",
        dsn=target.endpoints.dsn,
    )
    result = run_drill(spec, incident_dir)
    assert_drill(result)
    assert target.service("api").pid() == api_pid, "the app must recover without a restart"
    assert result.failed_probes > 0, "the availability probe never saw the outage"
