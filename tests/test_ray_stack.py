"""One embedded stack with Ray, for real, in order (no node is restarted: each restart costs
20-30 s on a 2-core machine; the chaos drills restart them):

head and worker alive with their CPUs (dashboard and `ray status`; the worker joined the head
the §7.2.1 way, `ray start --address=HEAD --num-cpus=1`); a run trains as a Ray task; a
cancel reaches the Ray task; the worker node's raylet SIGKILLed during a run fails it with the
reason; the head's GCS SIGKILLed: runs refused with 503 while /health stays 200.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import httpx
import pytest

from opsdrill.probes import ray as ray_probe
from opsdrill.recovery.ray_nodes import kill_leftovers
from opsdrill.stack.runs import RunsClient
from opsdrill.targets.local import ray_service

pytestmark = pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in ("ray", "aiohttp_cors")),
    reason="ray[default] is not installed (pip install -e '.[ray]')",
)
T = TypeVar("T")


@pytest.fixture(scope="module")
def stack() -> Iterator[Any]:
    """An embedded stack with Ray on (head + one §7.2.1 worker): no monitoring, no Redis, no
    first model (runs train on the shipped series)."""
    from opsdrill.targets.local import LocalTarget

    from .conftest import world_traversable_tmpdir

    mp = pytest.MonkeyPatch()
    mp.setenv("OPSDRILL_RAY", "1")
    state = world_traversable_tmpdir("opsdrill-ray-") / "state"
    target = LocalTarget(state, monitoring=False, worker_cgroup=False, redis=False)
    groups: dict[str, int | None] = {}
    try:
        target.up(train=False, say=lambda line: print(f"[stack] {line}"))
        groups.update((n, target.service(n).pid()) for n in ray_service.RAY_SERVICES)
        yield target
    finally:
        target.destroy()
        for name, group in groups.items():  # what a killed node left behind
            kill_leftovers(target, name, group)
        mp.undo()


def _wait(predicate: Callable[[], T], timeout: float) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.3)


def _child(pid: int | None, name: str) -> int:
    ps = subprocess.run(["ps", "-o", "pid=,comm=", "--ppid", str(pid)],
                        capture_output=True, text=True).stdout  # fmt: skip
    return next(int(line.split()[0]) for line in ps.splitlines() if name in line)


def _tasks(stack: Any, state: str) -> list[dict[str, Any]]:
    url = stack.service("ray_head").url
    reply = httpx.get(f"{url}/api/v0/tasks", params={"limit": 100, "detail": "1"}, timeout=10)
    found = reply.json()["data"]["result"]["result"]
    return [t for t in found if t.get("name") == "run_worker" and t.get("state") == state]


def test_head_and_worker_alive_with_resources(stack: Any) -> None:
    dashboard = stack.service("ray_head").url
    nodes = _wait(lambda: len(ray_probe.alive_nodes(dashboard) or []) == 2, 60)
    assert nodes, ray_probe.alive_nodes(dashboard)
    assert sorted(n.cpus for n in ray_probe.alive_nodes(dashboard) or []) == [0.0, 1.0]
    gcs = f"127.0.0.1:{stack._port('ray_gcs')}"
    # `ray status` reads the autoscaler's report, refreshed every few seconds: poll it
    status = _wait(lambda: (s := ray_probe.ray_status(gcs)) and s.active == 2 and s, 60)
    assert status and status.cpus_total == 1.0, ray_probe.ray_status(gcs)


def test_a_run_trains_as_a_ray_task(stack: Any) -> None:
    client = RunsClient(stack)
    run = client.wait_finished(client.submit("ray-one", max_steps=5), timeout=240)
    assert run["status"] == "completed", run
    assert _wait(lambda: _tasks(stack, "FINISHED"), 30), (
        "the Ray dashboard lists no finished run_worker task: the run did not train on Ray"
    )


def test_cancel_reaches_the_ray_task(stack: Any) -> None:
    client = RunsClient(stack)
    run_id = client.submit("ray-cancel", max_steps=5000)
    worker = _wait(lambda: client.worker(run_id), 120)
    assert worker is not None, f"run {run_id} never got a live worker: {client.get(run_id)}"
    assert client.cancel(run_id, "test: cancel through Ray") is not None
    assert _wait(lambda: worker.rss() == 0, 15), "the worker still runs after the cancel"
    assert _wait(lambda: _tasks(stack, "FAILED"), 30), "the Ray task did not end"
    assert client.get(run_id)["status"] == "cancelled"


def test_worker_node_killed_during_a_run_fails_it_with_the_reason(stack: Any) -> None:
    client = RunsClient(stack)
    run_id = client.submit("ray-node-dies", max_steps=5000)
    worker = _wait(lambda: client.worker(run_id), 120)
    assert worker is not None, f"run {run_id} never got a live worker: {client.get(run_id)}"
    os.kill(_child(stack.service("ray_worker").pid(), "raylet"), signal.SIGKILL)
    run = client.wait_finished(run_id, timeout=60)
    assert run["status"] == "failed" and "Ray task lost" in run["error_message"], run
    assert _wait(lambda: worker.rss() == 0, 15), "the run's worker outlived its Ray node"


def test_runs_refused_while_the_head_is_down(stack: Any) -> None:
    head, api = stack.service("ray_head"), stack.endpoints.api_url
    # the head is its GCS server: SIGKILL to `ray start --block` alone would leave it serving
    os.kill(_child(head.pid(), "gcs_server"), signal.SIGKILL)
    body = {"series_id": "airpassengers", "model_name": "MLP", "horizon": 12}
    key = {"X-API-Key": stack.endpoints.api_key or ""}
    refused = _wait(lambda: (r := httpx.post(f"{api}/runs", json=body, headers=key,
                                             timeout=10)).status_code == 503 and r, 10)  # fmt: skip
    assert refused, "POST /runs was not refused while the Ray head is down"
    assert "the Ray cluster at" in refused.json()["detail"]
    health = httpx.get(f"{api}/health", timeout=5)
    assert health.status_code == 200 and "ray" in health.json().get("degraded", []), health.text
