"""Runbook §8.1.2 (maintenance mode round trip) and §8.3 (vacuum and reindex), sandbox only."""

from __future__ import annotations

import time

import httpx
import pytest

from opsdrill.runbook.vacuum_stats import not_moved, stamps

pytestmark = pytest.mark.readonly  # the few that write are marked sandbox, which wins

REINDEXED = ("idx_runs_status", "idx_models_run_id")
VACUUMED = ("runs", "models", "metrics")


def _poll_status(api: httpx.Client, want: int, timeout: float = 10.0) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:
        resp = api.get("/health")
        if resp.status_code == want or time.monotonic() >= deadline:
            return resp
        time.sleep(0.1)


@pytest.mark.sandbox
@pytest.mark.exclusive
@pytest.mark.runbook("8.1.2")
def test_maintenance_mode_round_trip(ops, api: httpx.Client) -> None:
    message = "opsdrill maintenance round trip"
    done = ops("maintenance", "on", message)
    assert done.returncode == 0, f"maintenance on failed: {done.stderr.strip()}"
    try:
        resp = _poll_status(api, 503)
        assert resp.status_code == 503 and resp.json().get("message") == message, (
            f"with maintenance on, /health answered {resp.status_code} {resp.text[:200]} "
            f"(expected 503 with message {message!r})"
        )
        metrics = api.get("/metrics")
        assert metrics.status_code == 200, "/metrics must stay up during maintenance"
    finally:
        off = ops("maintenance", "off")
    assert off.returncode == 0, f"maintenance off failed: {off.stderr.strip()}"
    resp = _poll_status(api, 200)
    assert resp.status_code == 200, (
        f"after maintenance off /health answers {resp.status_code} (expected 200); fix: "
        "remove $NF_HOME/.maintenance"
    )


@pytest.mark.sandbox
@pytest.mark.runbook("8.3")
def test_reindex_concurrently_and_vacuum_analyze_take_effect(db, read) -> None:
    oid = "SELECT 'public.{}'::regclass::oid"
    for index in REINDEXED:
        before = db.execute(oid.format(index)).fetchone()[0]
        db.execute(f"REINDEX INDEX CONCURRENTLY {index}")
        after = db.execute(oid.format(index)).fetchone()[0]
        assert after != before, f"REINDEX CONCURRENTLY {index} did not rebuild it"
    leftovers = db.execute(
        "SELECT i.relname FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "
        "WHERE NOT x.indisvalid").fetchall()  # fmt: skip
    assert not leftovers, (
        f"invalid indexes left behind: {leftovers}; fix: DROP INDEX CONCURRENTLY them"
    )
    before = stamps(read)
    for table in VACUUMED:
        db.execute(f"VACUUM ANALYZE {table}")
    stuck = not_moved(read, before, VACUUMED, analyze=True)
    assert not stuck, (
        f"VACUUM ANALYZE succeeded but pg_stat_user_tables shows {'; '.join(stuck)} not "
        "vacuumed and analysed; fix: VACUUM silently skips a table the role does not own: "
        "run it as the owner (ALTER TABLE ... OWNER TO the application role)"
    )
