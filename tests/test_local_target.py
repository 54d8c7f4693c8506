"""The embedded target end to end: up, status, kill/start/restart by pid, recovery, down."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import httpx
import pytest

from opsdrill.plugin.waiting import until
from opsdrill.targets.local import LocalTarget


def health(stack: LocalTarget) -> int:
    try:
        return httpx.get(f"{stack.endpoints.api_url}/health", timeout=2).status_code
    except httpx.HTTPError:
        return 0


def test_every_service_is_up_with_pid_and_url(stack: LocalTarget) -> None:
    rows = {r.name: r for r in stack.status()}
    assert {"db", "api"} <= set(rows)
    for row in rows.values():
        assert row.running and row.healthy and row.pid, row
    assert rows["api"].url == stack.endpoints.api_url


def test_status_json_from_the_cli(stack: LocalTarget) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "opsdrill", "status", "--json", "--state-dir", str(stack.state_dir)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["healthy"] is True
    assert stack.secrets.db_password not in done.stdout
    assert stack.secrets.api_key not in done.stdout


def test_up_twice_is_harmless(stack: LocalTarget) -> None:
    before = {r.name: r.pid for r in stack.status()}
    lines: list[str] = []
    stack.up(say=lines.append)
    assert {r.name: r.pid for r in stack.status()} == before
    assert all(
        "already running" in line for line in lines if "started" in line or "already" in line
    )


@pytest.mark.parametrize(
    "name", ["node_exporter", "postgres_exporter", "alertmanager", "prometheus"]
)
def test_monitoring_service_kill_and_start(stack: LocalTarget, name: str) -> None:
    if name not in stack.services:
        pytest.skip(f"{name} is not installed: {stack.missing_monitoring()}")
    svc = stack.service(name)
    old = svc.pid()
    svc.kill(signal.SIGKILL)
    until(lambda: not svc.is_running(), 5)
    svc.start(timeout=30)
    assert svc.healthy() and svc.pid() != old


def test_api_restart_keeps_serving_forecasts(stack: LocalTarget) -> None:
    api = stack.service("api")
    old = api.pid()
    api.restart(timeout=120)
    assert api.pid() != old and health(stack) == 200
    resp = httpx.post(f"{stack.endpoints.api_url}/predict",
                      json={"series_id": "airpassengers", "horizon": 12}, timeout=10)  # fmt: skip
    assert resp.status_code == 200, resp.text


def test_db_sigkill_then_restart_app_recovers_without_restart(stack: LocalTarget) -> None:
    """Foundation 'done when': 503 within 1 s of the kill, 200 within 5 s of the DB's return."""
    api_pid = stack.service("api").pid()
    db = stack.service("db")
    assert health(stack) == 200
    db.kill(signal.SIGKILL)
    t_kill = time.monotonic()
    until(lambda: health(stack) == 503, 5)
    to_503 = time.monotonic() - t_kill
    time.sleep(2)  # stay down a while, so reconnect back-off has time to grow
    db.start(timeout=30)
    to_200 = until(lambda: health(stack) == 200, 10)
    assert stack.service("api").pid() == api_pid, "the app was restarted; it must recover alone"
    print(f"DB SIGKILL -> 503 in {to_503:.2f} s; DB ready -> 200 in {to_200:.2f} s")
    assert to_503 < 1.0
    assert to_200 < 5.0


def test_stale_state_after_everything_was_killed(stack: LocalTarget) -> None:
    pids = {r.name: r.pid for r in stack.status()}
    for name in reversed(list(stack.services)):
        stack.service(name).kill(signal.SIGKILL)
    until(lambda: not any(s.is_running() for s in stack.services.values()), 10)
    lines: list[str] = []
    stack.up(say=lines.append)
    assert any("stale state" in line for line in lines), lines
    assert stack.is_up()
    assert all(r.pid != pids[r.name] for r in stack.status())


def test_db_restarts_after_sigkill_even_when_its_pid_was_recycled(stack: LocalTarget) -> None:
    """Busy machines recycle pids: a stale lock file naming a live stranger must not block."""
    import os

    db = stack.service("db")
    dead = db.pid()
    db.kill(signal.SIGKILL)
    until(lambda: not db.is_running(), 5)
    cluster = stack.cluster
    lock = cluster.socket_dir / f".s.PGSQL.{cluster.port}.lock"
    until(lambda: (cluster.data_dir / "postmaster.pid").exists(), 1)
    for path in (cluster.data_dir / "postmaster.pid", lock):
        if path.exists():  # the pid is "reused" by this very test process
            path.write_text(path.read_text().replace(str(dead), str(os.getpid()), 1))
    rec = stack.get_record("db")
    assert rec is not None
    stack.put_record("db", type(rec)(pid=os.getpid(), ticks=-1, port=rec.port))
    db.start(timeout=30)
    assert db.healthy()
    until(lambda: health(stack) == 200, 10)


def test_asking_for_endpoints_does_not_make_a_stack_exist(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The capability check at collection reads endpoints, which records ports in the state
    file; a session must still see no stack there and start one (it once ran drills on none)."""
    target = LocalTarget(tmp_path / "s")
    assert target.endpoints.api_url and target.capabilities
    assert (tmp_path / "s" / "state.json").exists()
    assert not target.exists()
