"""Runbook §3.1.1, the daily health check: eight checks, each its own test.

Check 8 fixes the runbook's defect: its script prints "<24h" whatever the backup's age; here
the newest backup's real mtime, read on the target's host, is compared with 24 hours.
"""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import psycopg
import pytest

from opsdrill.probes.host_figures import disk_usage, memory_usage, newest_file
from opsdrill.runbook import queries
from opsdrill.runbook.thresholds import evaluate
from opsdrill.targets.base import Target

pytestmark = [pytest.mark.runbook("3.1.1"), pytest.mark.readonly]


def test_1_every_service_is_running(machine: Target) -> None:
    down = [name for name, service in machine.services.items() if not service.is_running()]
    assert not down, (
        f"services not running on {machine.name}: {', '.join(down)} (expected all of "
        f"{', '.join(machine.services)}); fix: start them (`opsdrill up` on the embedded "
        "stack, `systemctl start UNIT` on a host) and read their logs for why they stopped"
    )


def test_2_disk_usage_below_thresholds(machine: Target, disk_paths: list[str]) -> None:
    host = machine.testinfra_host()
    usage = disk_usage(host, disk_paths)
    verdicts = [evaluate("disk", d.percent, f"{d.mount} (holds {d.path})") for d in usage]
    bad = [v.message for v in verdicts if v.level.fails]
    assert not bad, "; ".join(bad)


def test_3_database_answers_select_1(target: Target) -> None:
    try:
        with psycopg.connect(target.endpoints.dsn, connect_timeout=5) as conn:
            value = conn.execute("SELECT 1").fetchone()
    except psycopg.Error as exc:
        pytest.fail(
            f"the database does not answer SELECT 1: {str(exc).strip().splitlines()[0]}; "
            "fix: start PostgreSQL and check its log (runbook 5.2.2)"
        )
    assert value == (1,), f"SELECT 1 returned {value}, expected (1,)"


def test_4_api_health_is_ok(api: httpx.Client) -> None:
    try:
        resp = api.get("/health")
    except httpx.HTTPError as exc:
        pytest.fail(f"GET /health got no answer ({type(exc).__name__}); fix: runbook 5.2.1")
    body = resp.json() if "json" in resp.headers.get("content-type", "") else {}
    assert resp.status_code == 200 and body.get("status") == "ok", (
        f"GET /health answered {resp.status_code} with status {body.get('status')!r} "
        f"(expected 200 and 'ok'): {body.get('error') or resp.text[:300]}; "
        "fix: repair the failing component it names (runbook 5.2.1, 5.2.2, 5.2.4)"
    )


def test_5_active_runs_below_threshold(read) -> None:
    running = read(queries.RUNNING_RUNS)
    verdict = evaluate("active_runs", len(running), "runs with status running")
    assert not verdict.level.fails, verdict.message


def test_6_error_rows_in_24h_below_threshold(read) -> None:
    count = read(queries.ERROR_ROWS_24H)[0]["n"]
    verdict = evaluate("errors_24h", count, "system_logs")
    assert not verdict.level.fails, verdict.message


def test_7_memory_usage_below_threshold(machine: Target) -> None:
    host = machine.testinfra_host()
    mem = memory_usage(host)
    verdict = evaluate("memory", mem.percent, f"the host ({mem.total_bytes / 2**30:.1f} GiB)")
    assert not verdict.level.fails, verdict.message


def test_8_newest_backup_is_younger_than_24h(target: Target, host: object) -> None:
    where = target.endpoints.backups_dir
    if where is None:
        pytest.skip(f"target {target.name!r} names no backups_dir: add it to the target file")
    how = f"run `NF_HOME={target.endpoints.home} python -m nf_auto_runner.ops backup`"
    newest = newest_file(host, str(where), "full_*.dump.gz")
    assert newest is not None, f"no full_*.dump.gz backup in {where}; fix: {how}"
    assert newest.size_bytes > 0, f"newest backup {newest.path} is empty; fix: {how}"
    taken = datetime.fromtimestamp(newest.mtime, UTC).isoformat(timespec="seconds")
    verdict = evaluate("backup_age", newest.age_seconds, newest.path)
    assert not verdict.level.fails, (
        f"newest backup {newest.path} is {newest.age_seconds / 3600:.1f} h old "
        f"(mtime {taken}), expected < 24 h ({verdict.level.value}); fix: {how}, then check "
        "the backup schedule"
    )
