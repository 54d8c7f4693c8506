"""Runbook §6.1.1 (indexes the runbook's queries need) and §6.1.2 (pool settings).

"Used" is judged on the plan with sequential scans priced out (`enable_seqscan = off`, in a
READ ONLY transaction, EXPLAIN without ANALYZE): on a small table the planner rightly prefers
a seq scan, so that shows what it would do on a production-sized one.
"""

from __future__ import annotations

import json

import pytest

from opsdrill.probes.metrics_text import AppMetrics
from opsdrill.runbook import queries

pytestmark = pytest.mark.readonly

REQUIRED_INDEXES = {
    "idx_runs_status": "runs (status)",
    "idx_runs_status_start_time": "runs (status, start_time DESC)",
    "idx_runs_status_created_at": "runs (status, created_at)",
    "idx_models_run_id": "models (run_id)",
    "idx_system_logs_level_created": "system_logs (log_level, created_at)",
}
#: runbook query -> table that must be reached through an index
QUERIES = {
    "3.1.3 running runs": (queries.RUNNING_RUNS, "runs"),
    "3.1.3 queue": (queries.QUEUE, "runs"),
    "3.1.2 errors last hour": (queries.ERRORS_LAST_HOUR, "system_logs"),
    "4.3 slowest completed runs": (queries.SLOWEST_COMPLETED_RUNS_7D, "runs"),
}


@pytest.mark.runbook("6.1.1")
@pytest.mark.parametrize("index", REQUIRED_INDEXES)
def test_index_exists_and_is_valid(index: str, read) -> None:
    rows = read("SELECT x.indisvalid AS valid FROM pg_class i JOIN pg_index x ON "
                "x.indexrelid = i.oid WHERE i.relname = %s", (index,))  # fmt: skip
    assert rows, (
        f"index {index} is missing (expected on {REQUIRED_INDEXES[index]}); fix: "
        f"CREATE INDEX CONCURRENTLY {index} ON {REQUIRED_INDEXES[index]}"
    )
    assert rows[0]["valid"], (
        f"index {index} exists but is INVALID (a failed CONCURRENTLY build); fix: "
        f"REINDEX INDEX CONCURRENTLY {index}"
    )


def _scans(plan: dict, table: str) -> list[str]:
    found = [plan["Node Type"]] if plan.get("Relation Name") == table else []
    for child in plan.get("Plans", []):
        found += _scans(child, table)
    return found


@pytest.mark.runbook("6.1.1")
@pytest.mark.parametrize("name", QUERIES)
def test_runbook_query_uses_an_index(name: str, db) -> None:
    sql, table = QUERIES[name]
    with db.transaction():
        db.execute("SET TRANSACTION READ ONLY")
        db.execute("SET LOCAL enable_seqscan = off")
        plan = db.execute(f"EXPLAIN (FORMAT JSON) {sql}").fetchone()[0]
    plan = plan if isinstance(plan, list) else json.loads(plan)
    scans = _scans(plan[0]["Plan"], table)
    assert scans and "Seq Scan" not in scans, (
        f"the {name} query reads {table} by {', '.join(scans) or 'nothing'} (expected an "
        f"index scan); fix: create the index it needs (see runbook 6.1.1)"
    )


@pytest.mark.runbook("6.1.2")
def test_pool_fits_the_server_and_nobody_waits(app_metrics: AppMetrics, read) -> None:
    pool_max = app_metrics.value("ts_forecast_db_pool_max")
    waiting = app_metrics.value("ts_forecast_db_pool_waiting")
    assert pool_max is not None and pool_max >= 1, (
        f"/metrics has ts_forecast_db_pool_max = {pool_max}, expected >= 1"
    )
    settings = read(
        "SELECT current_setting('max_connections')::int AS max, "
        "current_setting('superuser_reserved_connections')::int AS reserved"
    )[0]
    usable = settings["max"] - settings["reserved"]
    assert pool_max <= usable, (
        f"the app's pool may open {pool_max:g} connections but PostgreSQL allows {usable} "
        f"(max_connections {settings['max']} - {settings['reserved']} reserved); fix: lower "
        "pool size + overflow (runbook 6.1.2) or raise max_connections"
    )
    assert not waiting, (
        f"{waiting:g} request(s) are waiting for a pool connection (expected 0); fix: "
        "runbook 5.2.2 (pool exhausted)"
    )
