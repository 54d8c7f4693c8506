"""Runbook §5.2.2: the database dies and comes back; the app follows without a restart.

The outage lasts NF_TEST_OUTAGE_SECONDS (15 s by default): long enough that psycopg_pool's
own reconnect backoff would by then wait more than 5 s, so a pass shows the app's recovery
does not depend on it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from opsdrill.plugin.waiting import until
from system.tests.conftest import App, Postgres

OUTAGE = float(os.environ.get("NF_TEST_OUTAGE_SECONDS", "15"))


def test_sigkilled_database_503_within_1s_then_200_within_5s(healthy: App, pg: Postgres) -> None:
    c = healthy.client
    since = pg.sql("SELECT now() AS t")[0]["t"]
    t_kill = time.monotonic()
    pg.kill()
    detected = until(lambda: c.get("/health", timeout=2).status_code == 503, 5, "503")
    assert time.monotonic() - t_kill < 1.0 + 0.5, "503 not seen within 1 s of the kill"
    body = c.get("/health").json()
    assert body["status"] == "unhealthy" and body["failing"] == ["database"]
    deadline = time.monotonic() + OUTAGE
    while time.monotonic() < deadline:  # the outage: every answer fast, none a 500
        t0 = time.monotonic()
        assert c.get("/health", timeout=2).status_code == 503
        assert time.monotonic() - t0 < 1.0
        run = c.get("/runs/1", timeout=5)
        assert run.status_code == 503 and run.json() == {"detail": "database unavailable"}
        assert c.get("/metrics", timeout=2).status_code == 200
        time.sleep(0.5)
    pg.restart()
    t_up = time.monotonic()
    recovered = until(
        lambda: c.get("/health", timeout=2).status_code == 200,
        5,
        "/health 200 after the database came back",
    )
    print(f"detected in {detected:.2f} s; recovered {recovered:.2f} s after the DB was up")
    assert time.monotonic() - t_up < 5.0
    assert c.get("/runs", timeout=5).status_code == 200
    # the outage is on record once the database is back (held rows are written late)
    until(
        lambda: pg.sql(
            "SELECT 1 FROM system_logs WHERE log_level = 'ERROR' AND "
            "log_message LIKE 'database unavailable%%' AND created_at >= %s",
            (since,),
        ),
        10,
        "outage recorded in system_logs",
    )


def _cluster_pids(pg: Postgres) -> list[int]:
    assert pg.proc is not None
    pids = [pg.proc.pid]
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pg.proc.pid:
                pids.append(int(stat.parent.name))
    return pids


def test_hung_database_health_answers_within_1s(healthy: App, pg: Postgres) -> None:
    """A database that accepts but never answers (every process SIGSTOPped)."""
    c = healthy.client
    pids = _cluster_pids(pg)
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        until(lambda: c.get("/health", timeout=2).status_code == 503, 2, "503 while hung")
        for _ in range(3):
            t0 = time.monotonic()
            resp = c.get("/health", timeout=2)
            assert resp.status_code == 503 and time.monotonic() - t0 < 1.0
            assert "did not answer" in resp.json()["components"]["database"]["error"]
        assert c.get("/metrics", timeout=2).status_code == 200
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
    until(lambda: c.get("/health", timeout=2).status_code == 200, 5, "200 after SIGCONT")


def test_a_held_lock_stalls_requests_for_the_statement_timeout_only(
    healthy: App, pg: Postgres
) -> None:
    """Runbook §5.2.2 case 3: a forgotten `BEGIN; LOCK runs`. Requests on runs answer 503
    after statement_timeout (3 s in these tests) instead of hanging; /health stays 200, even
    while every pooled connection is stuck (saturation is load, not an outage)."""
    import psycopg

    with psycopg.connect(pg.admin, application_name="test-lock-holder") as holder:
        holder.execute("LOCK TABLE runs IN ACCESS EXCLUSIVE MODE")
        t0 = time.monotonic()
        resp = healthy.client.get("/runs", params={"limit": 1}, timeout=20)
        waited = time.monotonic() - t0
        assert resp.status_code == 503, resp.text
        assert resp.json() == {"detail": "database busy: statement timed out"}
        assert 2.5 < waited < 10
        assert healthy.client.get("/health").status_code == 200
        # every pooled connection stuck behind the lock: saturation is load, not an outage
        with ThreadPoolExecutor(max_workers=24) as pool:
            stuck = [
                pool.submit(healthy.client.get, "/runs", params={"limit": 1}, timeout=20)
                for _ in range(24)
            ]

            def saturated() -> bool:
                body = healthy.client.get("/health", timeout=2).json()
                return body["components"]["database"].get("pool", "").startswith("saturated")

            until(saturated, 3, "/health reporting a saturated pool")
            resp = healthy.client.get("/health", timeout=2)
            assert resp.status_code == 200, resp.text
            assert all(f.result().status_code == 503 for f in stuck)
        holder.rollback()
    assert healthy.client.get("/runs", params={"limit": 1}).status_code == 200
