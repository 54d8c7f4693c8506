"""Runbook §5.2.2: the database dies and comes back; the app follows without a restart.

The outage lasts NF_TEST_OUTAGE_SECONDS (15 s by default): long enough that psycopg_pool's
own reconnect backoff would by then wait more than 5 s, so a pass shows the app's recovery
does not depend on it.
"""

from __future__ import annotations

import os
import time

from tests.stack.conftest import App, Postgres, wait_for

OUTAGE = float(os.environ.get("NF_TEST_OUTAGE_SECONDS", "15"))


def test_sigkilled_database_503_within_1s_then_200_within_5s(healthy: App,
                                                             pg: Postgres) -> None:
    c = healthy.client
    t_kill = time.monotonic()
    pg.kill()
    detected = wait_for(lambda: c.get("/health", timeout=2).status_code == 503, 5, "503")
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
    recovered = wait_for(lambda: c.get("/health", timeout=2).status_code == 200, 5,
                         "/health 200 after the database came back")
    print(f"detected in {detected:.2f} s; recovered {recovered:.2f} s after the DB was up")
    assert time.monotonic() - t_up < 5.0
    assert c.get("/runs", timeout=5).status_code == 200
