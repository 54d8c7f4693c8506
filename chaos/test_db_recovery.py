"""Runbook §5.3.2: committed rows lost; the database is recovered from the newest backup.

A backup is taken the app's way (`nf_auto_runner.ops backup`), then a table is emptied.
The recovery takes a safety dump first, stops the app, recreates and restores the database
and starts the app. Afterwards every table holds exactly what the backup holds: checked by
restoring the same backup into a scratch database and comparing checksums table by table.

The backup is the procedure's recovery point: rows the app commits between it and the fault
(a log line, say) are lost by the restore, as the runbook accepts. The drill's integrity check
reports them as that window's loss; a row the backup holds and the restore lost still fails.
"""

from __future__ import annotations

from pathlib import PurePosixPath

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from opsdrill.drill import Detector
from opsdrill.drill.standard import StandardDrill
from opsdrill.faults import DataLoss
from opsdrill.faults.data_loss import row_count
from opsdrill.recovery.database import restore_database
from opsdrill.recovery.db_recovery import backup_snapshot, restore_into, table_checksums
from opsdrill.targets.base import Target

pytestmark = [
    pytest.mark.destructive,
    pytest.mark.runbook("5.3.2"),
    pytest.mark.fault("data_loss", table="series"),
]

TABLES = ["experiments", "series_catalog", "series", "runs", "models", "metrics"]


def _backup(target: Target) -> PurePosixPath:
    done = target.ops("backup", timeout=120)
    assert done.ok, f"ops backup failed: {done.output()}"
    return PurePosixPath(done.stdout.strip().splitlines()[-1])


def test_lost_rows_are_recovered_from_the_newest_backup_with_a_safety_dump_first(
    target: Target,
    drill: StandardDrill,
) -> None:
    admin = target.endpoints.admin_dsn or ""
    backup = _backup(target)
    forecast_ok = drill.probes.forecast_ok()
    spec = drill.spec(
        name="db-recovery",
        title="Rows of `series` deleted; database restored from backup",
        severity="P1",
        fault=DataLoss(target, table="series"),
        effect=Detector("series is empty", lambda: row_count(admin, "series") == 0, 5),
        detectors=[Detector("a forecast fails", lambda: not forecast_ok.check(), 10)],
        also_steady=[drill.faults.no_run_running()],
        recover=restore_database(target),
        recovery_timeout=120,
        recovery_point=lambda: backup_snapshot(target, backup),
    )
    result = drill.run(spec)
    assert any(backup.name in a for a in result.actions), "the newest backup must be used"
    assert any("safety dump" in a for a in result.actions)
    scratch = "opsdrill_verify"
    restore_into(target, backup, scratch)
    try:
        expected = table_checksums(make_conninfo(admin, dbname=scratch), TABLES)
        assert table_checksums(admin, TABLES) == expected, "tables differ from the backup"
    finally:
        with psycopg.connect(make_conninfo(admin, dbname="postgres"), autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {scratch} WITH (FORCE)")
