"""Training runs executed as Ray tasks: the pieces alone, then one stack with Ray for real.

The real part trains one run through the cluster (the Ray dashboard lists the task, the run
row reads `completed` with its model), cancels a long run through the API and sees the Ray
task and its worker end, and refuses a run while the cluster does not answer.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from opsdrill import ports
from opsdrill.recovery.ray_nodes import restart_ray_cluster
from opsdrill.training_runs import RunsClient

needs_ray = pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in ("ray", "aiohttp_cors")),
    reason="ray[default] is not installed (pip install -e '.[ray]')",
)


# -- the pieces ------------------------------------------------------------------------------
def test_worker_argv_local_without_ray_and_submitter_with_it() -> None:
    from nf_auto_runner.executor import worker_argv

    assert worker_argv(7, None) == [sys.executable, "-m", "nf_auto_runner.worker", "7"]
    assert worker_argv(7, "127.0.0.1:6379")[2:] == ["nf_auto_runner.ray_submit", "7"]


def test_address_from_the_stack_setting_then_ray_address(monkeypatch: pytest.MonkeyPatch) -> None:
    from nf_auto_runner import ray_cluster

    monkeypatch.delenv("NF_RAY_ADDRESS", raising=False)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert ray_cluster.address() is None and ray_cluster.status() is None
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.5:6379")
    assert ray_cluster.address() == "10.0.0.5:6379"
    monkeypatch.setenv("NF_RAY_ADDRESS", "127.0.0.1:7000")
    assert ray_cluster.address() == "127.0.0.1:7000"


def test_probe_says_why_a_closed_head_does_not_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    from nf_auto_runner import ray_cluster

    addr = f"127.0.0.1:{ports.free_port()}"
    error = ray_cluster.probe(addr)
    assert error is not None and "ConnectionRefusedError" in error
    monkeypatch.setenv("NF_RAY_ADDRESS", addr)
    status = ray_cluster.status()
    assert status is not None and status["status"] == "degraded"
    assert addr in status["error"] and "refused" in status["error"]


def test_task_options_one_attempt_and_parallel_runs_fit_one_cpu(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from nf_auto_runner.ray_submit import describe_task_exit, task_options

    monkeypatch.delenv("NF_RAY_TASK_CPUS", raising=False)
    assert task_options(2) == {"num_cpus": 0.5, "max_retries": 0, "retry_exceptions": False}
    monkeypatch.setenv("NF_RAY_TASK_CPUS", "1")
    assert task_options(2)["num_cpus"] == 1.0
    assert "SIGKILL" in describe_task_exit(-9) and "Ray node" in describe_task_exit(-9)
    assert "status 2" in describe_task_exit(2)


def test_reason_keeps_what_happened_not_rays_advice() -> None:
    from nf_auto_runner.ray_submit import reason

    class NodeDiedError(Exception):
        pass

    text = (
        "Task failed because the node it was running on is dead or unavailable. Node IP: "
        "192.0.2.2, node ID: 99b1. This can happen if the node was preempted. To see ..."
    )
    assert reason(NodeDiedError(text)) == (
        "NodeDiedError: Task failed because the node it was running on is dead or "
        "unavailable. Node IP: 192.0.2.2, node ID: 99b1."
    )


def test_task_worker_dies_with_the_process_that_started_it(tmp_path: Path) -> None:
    """PR_SET_PDEATHSIG: a Ray worker process that dies (its node killed) takes the training
    worker with it; without it the run would go on training unsupervised."""
    script = (
        "import subprocess, sys\n"
        "from nf_auto_runner.ray_task import _die_with_parent\n"
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'],"
        " preexec_fn=_die_with_parent)\n"
        "print(p.pid, flush=True)\n"
        "import time; time.sleep(60)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    parent.kill()
    parent.wait()
    alive = _wait(lambda: _state(child) in ("gone", "Z"), 10) is False
    if alive:
        os.kill(child, signal.SIGKILL)
    assert not alive, "the training worker outlived the process that started it"


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0]
    except OSError:
        return "gone"


# -- for real --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ray_target() -> Iterator[object]:
    """An embedded stack with Ray on (head + one §7.2.1 worker), no monitoring."""
    from opsdrill.targets.local import LocalTarget

    from .conftest import world_traversable_tmpdir

    mp = pytest.MonkeyPatch()
    mp.setenv("OPSDRILL_RAY", "1")
    state = world_traversable_tmpdir("opsdrill-ray-") / "state"
    target = LocalTarget(state, monitoring=False, worker_cgroup=False)
    try:
        target.up(train=False, say=lambda line: print(f"[stack] {line}"))
        yield target
    finally:
        target.destroy()
        mp.undo()


def _tasks(target: object) -> list[dict]:
    url = target.services["ray_head"].url  # type: ignore[attr-defined]
    reply = httpx.get(f"{url}/api/v0/tasks", params={"limit": 100, "detail": "1"}, timeout=10)
    return list(reply.json()["data"]["result"]["result"])


def _wait(predicate, timeout: float):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.5)


@needs_ray
def test_a_run_trains_as_a_ray_task(ray_target: object) -> None:
    client = RunsClient(ray_target.endpoints)  # type: ignore[attr-defined]
    run_id = client.submit("ray-one", max_steps=5)
    run = client.wait_finished(run_id, timeout=240)
    assert run["status"] == "completed", run
    tasks = _wait(lambda: [t for t in _tasks(ray_target) if t.get("name") == "run_worker"
                           and t.get("state") == "FINISHED"], 30)  # fmt: skip
    assert tasks, "the Ray dashboard lists no finished run_worker task: the run trained locally"


@needs_ray
def test_cancel_reaches_the_ray_task(ray_target: object) -> None:
    client = RunsClient(ray_target.endpoints)  # type: ignore[attr-defined]
    run_id = client.submit("ray-cancel", max_steps=5000)
    worker = _wait(lambda: client.worker(run_id), 120)
    assert worker is not None, f"run {run_id} never got a live worker: {client.get(run_id)}"
    assert client.cancel(run_id, "test: cancel through Ray") is not None
    gone = _wait(lambda: worker.rss() == 0, 15)
    assert gone, "the worker on the Ray node still runs after the cancel"
    ended = _wait(lambda: [t for t in _tasks(ray_target) if t.get("name") == "run_worker"
                           and t.get("state") == "FAILED"], 30)  # fmt: skip
    assert ended, "the Ray task did not end after the cancel"
    assert client.get(run_id)["status"] == "cancelled"


@needs_ray
def test_runs_refused_while_the_head_is_down(ray_target: object) -> None:
    head = ray_target.services["ray_head"]  # type: ignore[attr-defined]
    api = ray_target.endpoints.api_url  # type: ignore[attr-defined]
    key = {"X-API-Key": ray_target.endpoints.api_key or ""}  # type: ignore[attr-defined]
    group = head.pid()
    # the head is its GCS server: SIGKILL to `ray start --block` alone would leave it serving
    ps = subprocess.run(["ps", "-o", "pid=,comm=", "--ppid", str(head.pid())],
                        capture_output=True, text=True).stdout  # fmt: skip
    gcs = next(int(line.split()[0]) for line in ps.splitlines() if "gcs_server" in line)
    os.kill(gcs, signal.SIGKILL)
    try:
        _wait(lambda: not head.is_running(), 30)
        body = {"series_id": "airpassengers", "model_name": "MLP", "horizon": 12}
        refused = httpx.post(f"{api}/runs", json=body, headers=key, timeout=10)
        assert refused.status_code == 503, refused.text
        assert "Ray cluster" in refused.json()["detail"]
        health = httpx.get(f"{api}/health", timeout=5)
        assert health.status_code == 200 and "ray" in health.json().get("degraded", [])
    finally:
        restart_ray_cluster(ray_target, {"ray_head": group})  # type: ignore[arg-type]
