"""A runner SIGKILLed in the middle of container faults leaves them journaled, and the next
`opsdrill rollback --target docker:PROJECT` undoes each one, read back from the engine: the
api container unpaused, its memory limit back to what it was, the toxic gone, the journal
empty."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from opsdrill.faults.journal import Journal
from opsdrill.faults.network import toxics_on
from opsdrill.plugin.waiting import first
from opsdrill.targets import Target
from tests.docker.conftest import ROOT, ComposedStack, health_status

pytestmark = pytest.mark.docker

MB = 1024 * 1024

#: injects each fault through the fault code, journaled as a drill does, then waits to die
RUNNER = """
import json, sys, time
import opsdrill.faults as faults
from opsdrill.targets import parse_spec
target = parse_spec(sys.argv[1])
target.allow_destructive = True
for kind, params in json.loads(sys.argv[2]):
    fault = faults.REGISTRY[kind](target, **params)
    fault.inject()
    print("injected", kind, json.dumps(fault.entry.undo), flush=True)
print("all injected", flush=True)
time.sleep(600)
"""


def _env(state_home: Path) -> dict[str, str]:
    path = os.pathsep.join([str(ROOT), str(ROOT / "system"), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "OPSDRILL_STATE_HOME": str(state_home), "PYTHONPATH": path}


def _start_runner(spec: str, faults: list[Any], env: dict[str, str]) -> subprocess.Popen[str]:
    runner = subprocess.Popen(
        [sys.executable, "-c", RUNNER, spec, json.dumps(faults)],
        env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert runner.stdout is not None
    for line in runner.stdout:  # each line is printed once its fault is in place
        print(f"[runner] {line.rstrip()}")
        if line.startswith("all injected"):
            return runner
    runner.kill()
    _, err = runner.communicate(timeout=30)
    pytest.fail(f"the runner died before injecting every fault: {err[-1500:]}")


def test_sigkilled_runner_container_faults_are_rolled_back(
    composed: ComposedStack, docker_target: Target, tmp_path: Path
) -> None:
    api = docker_target.service("api")
    url = docker_target.endpoints.api_url
    assert health_status(url) == 200, "steady state before the faults"
    limit_before = docker_target.memory("worker").limit_bytes
    used = docker_target.memory("worker").used_bytes
    link = docker_target.proxy_for("app_db")
    assert toxics_on(link.toxiproxy_url, link.proxy) == [], "no toxic before the drill"
    lowered_mb = 512  # the workers' headroom on top of the api's own use: no OOM kill
    faults = [
        ["host_oom", {"limit_mb": lowered_mb}],
        ["net_latency", {"proxy": "postgres", "latency": 700}],
        ["service_pause", {"service": "api"}],
    ]
    env = _env(tmp_path / "state")
    runner = _start_runner(composed.spec, faults, env)
    try:
        assert api.paused(), "the engine says the api container is paused"
        limit = docker_target.memory("worker").limit_bytes or 0
        assert abs(limit - (used + lowered_mb * MB)) < 64 * MB, (limit, used)
        assert len(toxics_on(link.toxiproxy_url, link.proxy)) == 1
        assert health_status(url) is None, "a frozen api answers nothing"
        journal = Journal(tmp_path / "state" / "targets" / "compose" / composed.project)
        assert {e.kind for e in journal.entries()} == {k for k, _ in faults}
        os.kill(runner.pid, signal.SIGKILL)  # by pid: no finally, no revert
        runner.wait(timeout=30)
        assert api.paused(), "a SIGKILLed runner cannot have thawed it"

        done = subprocess.run(
            [sys.executable, "-m", "opsdrill", "rollback", "--target", composed.spec],
            env=env, cwd=ROOT, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        print(done.stdout, done.stderr)
        assert done.returncode == 0, done.stderr
        assert "3 fault(s) reverted" in done.stdout, done.stdout
        for kind in ("service_pause", "host_oom", "net_latency"):
            assert f"reverted {kind}" in done.stdout, done.stdout
        assert not api.paused(), "rollback left the api paused"
        assert docker_target.memory("worker").limit_bytes == limit_before
        assert toxics_on(link.toxiproxy_url, link.proxy) == [], "rollback left the toxic"
        assert journal.entries() == [], "rollback left journal entries"
        first(lambda: health_status(url) == 200, 60, "/health 200 after the rollback")

        again = subprocess.run(
            [sys.executable, "-m", "opsdrill", "rollback", "--target", composed.spec],
            env=env, cwd=ROOT, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert again.returncode == 0 and "no fault to revert" in again.stdout, again.stdout
    finally:
        if runner.poll() is None:
            os.kill(runner.pid, signal.SIGKILL)
        _restore(docker_target, limit_before, link)


def _restore(target: Target, limit: int | None, link: Any) -> None:
    """Whatever the assertions said, leave the shared stack as the other tests expect it."""
    api = target.service("api")
    if api.paused():
        api.unpause()
    target.set_memory_limit("worker", limit)
    for name in toxics_on(link.toxiproxy_url, link.proxy):
        httpx.delete(f"{link.toxiproxy_url}/proxies/{link.proxy}/toxics/{name}", timeout=5)
