"""Runbook §5.2.2: PostgreSQL restarted under the app; the app must reconnect by itself.

`DbRestart` recovers by itself (the server is back when the restart returns), so the drill
runs only §5.2.2's diagnosis and checks the steady state comes back with nothing fixed."""

from __future__ import annotations

import time
from pathlib import Path

import psycopg
import pytest

from opsdrill.drill import Detector, DrillSpec, run_drill
from opsdrill.faults import DbRestart
from opsdrill.probes.sql import sql_ok
from opsdrill.recovery.procedures import diagnose_database
from opsdrill.targets.base import Target

from .conftest import AssertDrill, FaultProbes, Probes

pytestmark = [
    pytest.mark.destructive,
    pytest.mark.runbook("5.2.2"),
    pytest.mark.fault("db_restart"),
]


def _postmaster_started_after(admin_dsn: str, wall: float) -> bool:
    with psycopg.connect(admin_dsn, autocommit=True, connect_timeout=2) as conn:
        row = conn.execute("SELECT extract(epoch FROM pg_postmaster_start_time())").fetchone()
    return row is not None and float(row[0]) > wall


def test_db_restart_is_survived_without_restarting_the_app(
    target: Target,
    probes: Probes,
    fault_probes: FaultProbes,
    incident_dir: Path,
    assert_drill: AssertDrill,
) -> None:
    api_pid = target.service("api").pid()
    admin = target.endpoints.admin_dsn or ""
    before = time.time()
    spec = DrillSpec(
        name="db-restart",
        title="PostgreSQL restarted",
        runbook="5.2.2",
        severity="P1",
        fault=DbRestart(target),
        effect=Detector(
            "pg_postmaster_start_time() is new", lambda: _postmaster_started_after(admin, before)
        ),
        detectors=[
            Detector(
                "PostgreSQL accepts the app's role again (SELECT 1)",
                lambda: sql_ok(target.endpoints.dsn),
                10,
            ),
        ],
        steady=[*probes.steady(), fault_probes.no_run_running()],
        recover=diagnose_database(target),
        availability_url=f"{target.endpoints.api_url}/health",
        endpoints=target.endpoints,
    )
    result = run_drill(spec, incident_dir)
    assert_drill(result)
    assert target.service("api").pid() == api_pid, "the app must recover without a restart"
