"""The embedded stack's Ray cluster, for real: head and worker alive with their resources,
a §7.2.1 node joins and appears, a SIGKILLed raylet takes its node out of the cluster."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from opsdrill.probes import ray as ray_probe
from opsdrill.targets import ray_service
from opsdrill.targets.process_service import ProcessService

pytestmark = pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in ("ray", "aiohttp_cors")),
    reason="ray[default] is not installed (pip install -e '.[ray]')",
)


@pytest.fixture(scope="module")
def ray_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """Head and worker started through the stack's own specs, from the embedded target."""
    from opsdrill.targets.local import LocalTarget

    mp = pytest.MonkeyPatch()
    mp.setenv("OPSDRILL_RAY", "1")
    target = LocalTarget(tmp_path_factory.mktemp("ray-"), monitoring=False, worker_cgroup=False)
    services = target.services
    assert "ray_head" in services and "ray_worker" in services
    try:
        for name in ray_service.RAY_SERVICES:
            services[name].start(timeout=180.0)
        yield target
    finally:
        for name in reversed(ray_service.RAY_SERVICES):
            services[name].stop()
        mp.undo()


def _wait_nodes(url: str, count: int, timeout: float = 90.0) -> list[ray_service.Node]:
    deadline = time.monotonic() + timeout
    while True:
        nodes = ray_service.alive_nodes(url) or []
        if len(nodes) == count or time.monotonic() > deadline:
            return nodes
        time.sleep(0.2)


def test_head_and_worker_alive_with_resources(ray_stack: object) -> None:
    head = ray_stack.services["ray_head"]  # type: ignore[attr-defined]
    nodes = _wait_nodes(head.url, 2)
    assert sorted(n.cpus for n in nodes) == [0.0, 1.0], nodes
    gcs = ray_stack._port("ray_gcs")  # type: ignore[attr-defined]
    # `ray status` reads the autoscaler's report, refreshed every few seconds: poll it
    deadline = time.monotonic() + 60
    while (status := ray_probe.ray_status(f"127.0.0.1:{gcs}")) is None or (
        status.active < 2 and time.monotonic() < deadline
    ):
        assert time.monotonic() < deadline, "`ray status` never answered"
        time.sleep(1)
    assert (status.active, status.cpus_total) == (2, 1.0), status.text


def test_runbook_7_2_1_adds_a_worker_and_it_appears(ray_stack: object, tmp_path: Path) -> None:
    """`ray start --address=HEAD --num-cpus=1` (with --block so we own its pid)."""
    head = ray_stack.services["ray_head"]  # type: ignore[attr-defined]
    extra = ProcessService(
        "ray_extra",
        _Records(),
        lambda: ray_service.worker_spec(ray_stack._port, ray_stack.state_dir, name="ray_extra"),  # type: ignore[attr-defined]
        tmp_path / "extra.log",
    )
    extra.start(timeout=180.0)
    try:
        assert len(_wait_nodes(head.url, 3)) == 3
    finally:
        extra.stop()
    assert len(_wait_nodes(head.url, 2)) == 2


def test_sigkilled_raylet_takes_its_node_out(ray_stack: object) -> None:
    """Fails on a cluster whose dead nodes stay listed, or whose worker outlives its raylet."""
    services = ray_stack.services  # type: ignore[attr-defined]
    worker, head = services["ray_worker"], services["ray_head"]
    children = subprocess.run(["ps", "-o", "pid=,comm=", "--ppid", str(worker.pid())],
                              capture_output=True, text=True).stdout  # fmt: skip
    raylet = next(int(line.split()[0]) for line in children.splitlines() if "raylet" in line)
    os.kill(raylet, signal.SIGKILL)
    assert len(_wait_nodes(head.url, 1)) == 1
    deadline = time.monotonic() + 30
    while worker.is_running() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not worker.is_running()
    worker.stop()  # forget the record
    worker.start(timeout=180.0)  # the restart procedure: start the node again
    assert len(_wait_nodes(head.url, 2)) == 2


def test_nodes_unknown_when_head_is_down() -> None:
    """The probe the checks rely on says None, not an empty cluster, when nothing answers."""
    from opsdrill import ports

    assert ray_service.alive_nodes(f"http://127.0.0.1:{ports.free_port()}") is None


class _Records:
    def __init__(self) -> None:
        self.records: dict[str, object] = {}

    def get_record(self, name: str) -> object:
        return self.records.get(name)

    def put_record(self, name: str, record: object) -> None:
        if record is None:
            self.records.pop(name, None)
        else:
            self.records[name] = record
