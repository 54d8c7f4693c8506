"""Runbook §5.2.2: PostgreSQL restarted under the app; the app must reconnect by itself.

`DbRestart` recovers by itself (the server is back when the restart returns), so the drill
runs only §5.2.2's diagnosis and checks the steady state comes back with nothing fixed."""

from __future__ import annotations

import time

import psycopg
import pytest

from opsdrill.drill import Detector
from opsdrill.drill.standard import StandardDrill
from opsdrill.faults import DbRestart
from opsdrill.probes.sql import sql_ok
from opsdrill.recovery.database import diagnose_database
from opsdrill.targets.base import Target

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
    drill: StandardDrill,
) -> None:
    api_pid = target.service("api").pid()
    before = time.time()
    spec = drill.spec(
        name="db-restart",
        title="PostgreSQL restarted",
        severity="P1",
        fault=DbRestart(target),
        effect=Detector(
            "pg_postmaster_start_time() is new",
            # the endpoints as they are now: a restarted container gets a new host port
            lambda: _postmaster_started_after(target.endpoints.admin_dsn or "", before),
        ),
        detectors=[
            Detector(
                "PostgreSQL accepts the app's role again (SELECT 1)",
                lambda: sql_ok(target.endpoints.dsn),
                10,
            ),
        ],
        also_steady=[drill.faults.no_run_running()],
        recover=diagnose_database(target),
    )
    drill.run(spec)
    assert target.service("api").pid() == api_pid, "the app must recover without a restart"
