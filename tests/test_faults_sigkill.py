"""No fault outlives its runner: a runner SIGKILLed mid-fault, then `opsdrill rollback`.

For every fault kind a separate process injects the fault and waits; it is SIGKILLed (no
`finally` can run), the test checks what is left behind, then runs `opsdrill rollback` and
asserts the steady state is back: /health 200, a forecast works, the journal is empty.
A SIGTERMed runner reverts by itself. One embedded stack is shared by all of them.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from opsdrill.faults.journal import Journal
from opsdrill.faults.pool_exhaustion import fault_app_name
from opsdrill.plugin.waiting import until
from opsdrill.probes.sql import sql_ok
from opsdrill.processes import ProcessRef
from opsdrill.targets.local import LocalTarget

pytestmark = pytest.mark.slow  # one embedded stack of its own: not marked destructive

RUNNER = textwrap.dedent(
    """
    import json, signal, sys, time
    from pathlib import Path
    from opsdrill.cli import _terminate
    from opsdrill.faults import REGISTRY
    from opsdrill.targets.local import LocalTarget
    signal.signal(signal.SIGTERM, _terminate)
    kind, params, state = sys.argv[1], json.loads(sys.argv[2]), Path(sys.argv[3])
    with REGISTRY[kind](LocalTarget(state), **params) as fault:
        print(json.dumps({"fault_id": fault.entry.fault_id, "undo": fault.entry.undo}), flush=True)
        time.sleep(600)
    """
)


def _sessions(stack: LocalTarget, fault_id: str) -> int:
    with psycopg.connect(stack.endpoints.admin_dsn or "", autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
            (fault_app_name(fault_id),),
        ).fetchone()
    return int(row[0]) if row else 0


def _status(url: str) -> int:
    try:
        return httpx.get(url, timeout=2).status_code
    except httpx.HTTPError:
        return 0


def _forecast_ok(stack: LocalTarget) -> bool:
    body = {"series_id": "airpassengers", "horizon": 12}
    return httpx.post(f"{stack.endpoints.api_url}/predict", json=body, timeout=5).status_code == 200


def _series_rows(stack: LocalTarget) -> int:
    with psycopg.connect(stack.endpoints.admin_dsn or "", autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM series").fetchone()
    return int(row[0]) if row else 0


def _left_behind(kind: str, stack: LocalTarget, info: dict[str, Any]) -> None:
    """Assert what a SIGKILLed runner leaves behind (or, for sessions, that the server cleans)."""
    undo, health = info["undo"], f"{stack.endpoints.api_url}/health"
    if kind == "db_down":
        assert not sql_ok(stack.endpoints.dsn), "the database must still be down"
    elif kind in ("app_crash", "port_conflict", "broken_config"):
        assert _status(health) == 0, "the app must still be down"
    if kind == "port_conflict":
        assert ProcessRef(*undo["holder"][1:]).alive()
    elif kind == "broken_config":
        assert "[4, 8" in Path(undo["path"]).read_text()
    elif kind == "cpu_hog":
        assert all(ProcessRef(p, t).alive() for _, p, t in undo["hogs"]), "hogs outlive the runner"
    elif kind == "data_loss":
        assert _series_rows(stack) == 0
    elif kind in ("pool_exhaustion", "lock_contention"):
        # held by the runner's sockets: the kernel closes them and the server ends the sessions
        until(lambda: _sessions(stack, info["fault_id"]) == 0, 30, "sessions ended")


@pytest.fixture
def runner(stack: LocalTarget) -> Iterator[Callable[[str, dict[str, Any]], Any]]:
    started: list[subprocess.Popen[str]] = []

    def start(kind: str, params: dict[str, Any]) -> tuple[subprocess.Popen[str], dict[str, Any]]:
        proc = subprocess.Popen(
            [sys.executable, "-c", RUNNER, kind, json.dumps(params), str(stack.state_dir)],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        started.append(proc)
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line, f"the runner for {kind} exited before injecting (rc {proc.wait()})"
        return proc, json.loads(line)

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


KINDS = [
    ("db_down", {"sig": "SIGKILL"}),
    ("db_restart", {}),
    ("app_crash", {"sig": "SIGKILL"}),
    ("pool_exhaustion", {}),
    ("lock_contention", {}),
    ("port_conflict", {}),
    ("broken_config", {}),
    ("cpu_hog", {"count": 2}),
    ("data_loss", {"table": "series"}),
]


@pytest.mark.parametrize(("kind", "params"), KINDS, ids=[k for k, _ in KINDS])
def test_sigkilled_runner_mid_fault_is_rolled_back_by_the_next_run(
    stack: LocalTarget, runner: Callable[..., Any], kind: str, params: dict[str, Any]
) -> None:
    proc, info = runner(kind, params)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    [entry] = Journal(stack.state_dir).entries()
    assert entry.kind == kind and entry.runner_pid == proc.pid
    _left_behind(kind, stack, info)
    done = subprocess.run(
        [sys.executable, "-m", "opsdrill", "rollback", "--state-dir", str(stack.state_dir)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"left by pid {proc.pid}" in done.stdout
    assert Journal(stack.state_dir).entries() == []
    until(lambda: _status(f"{stack.endpoints.api_url}/health") == 200, 60, "/health 200")
    until(lambda: _forecast_ok(stack), 30, "a forecast succeeds")
    if kind == "cpu_hog":
        assert not any(ProcessRef(p, t).alive() for _, p, t in info["undo"]["hogs"])
    if kind == "port_conflict":
        assert not ProcessRef(*info["undo"]["holder"][1:]).alive()


@pytest.mark.parametrize("kind", ["lock_contention", "cpu_hog", "broken_config"])
def test_sigtermed_runner_reverts_before_it_exits(
    stack: LocalTarget, runner: Callable[..., Any], kind: str
) -> None:
    proc, info = runner(kind, dict(KINDS)[kind])
    proc.send_signal(signal.SIGTERM)
    proc.wait(120)
    assert Journal(stack.state_dir).entries() == [], "SIGTERM must revert, not leave a journal"
    until(lambda: _status(f"{stack.endpoints.api_url}/health") == 200, 60, "/health 200")
    if kind == "cpu_hog":
        assert not any(ProcessRef(p, t).alive() for _, p, t in info["undo"]["hogs"])
