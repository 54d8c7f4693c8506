"""What the Ray drills share: the cluster's state as the dashboard and /health show it, a run
training on the worker node, and the restart of a node by its record (runbook 7.2.1)."""

from __future__ import annotations

import time
from typing import Any

import httpx

from opsdrill.errors import FaultNotEffective
from opsdrill.probes import ray as ray_probe
from opsdrill.recovery.ray_nodes import restart_ray_cluster, restart_ray_node
from opsdrill.stack.runs import RunsClient, Worker
from opsdrill.targets.base import Target

__all__ = ["RayCluster", "training_run"]

#: a worker past its torch import: the run really trains
TRAINING_RSS = 200 * 2**20


class RayCluster:
    """One target's Ray cluster, asked through its dashboard and the app's /health."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.dashboard = target.service("ray_head").url or ""
        self.api_url = target.endpoints.api_url
        #: each node's `ray start` pid, its process group: what is left of it after a kill
        self.groups = {name: target.service(name).pid() for name in ("ray_head", "ray_worker")}

    def worker_nodes(self) -> int:
        """Alive nodes offering CPUs (the head offers none); -1 when the dashboard is down."""
        nodes = ray_probe.alive_nodes(self.dashboard)
        return -1 if nodes is None else sum(1 for n in nodes if n.cpus > 0)

    def ready(self) -> bool:
        return self.worker_nodes() >= 1 and self.app_sees("ok")

    def app_sees(self, status: str) -> bool:
        """/health answers 200 with the Ray component in `status`."""
        try:
            resp = httpx.get(f"{self.api_url}/health", timeout=2.0)
            ray: dict[str, Any] = resp.json()["components"].get("ray") or {}
        except (httpx.HTTPError, ValueError, KeyError):
            return False
        return resp.status_code == 200 and ray.get("status") == status

    def restart_worker(self) -> str:
        return restart_ray_node(self.target, "ray_worker", self.groups["ray_worker"])

    def restart_cluster(self) -> list[str]:
        return restart_ray_cluster(self.target, self.groups)

    def status(self) -> str:
        nodes = ray_probe.alive_nodes(self.dashboard)
        if nodes is None:
            return f"the Ray dashboard at {self.dashboard} does not answer"
        return f"{len(nodes)} alive Ray node(s): " + ", ".join(
            f"{n.node_id[:8]} {n.cpus:g} CPU" for n in nodes
        )


def training_run(client: RunsClient, name: str, timeout: float = 180) -> tuple[int, Worker]:
    """A long run submitted and training (worker past its torch import) on the cluster."""
    run_id = client.submit(name, max_steps=5000)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        worker = client.worker(run_id)
        if worker is not None and worker.rss() > TRAINING_RSS:
            return run_id, worker
        time.sleep(0.25)
    client.cancel(run_id, "opsdrill: the run never trained")
    raise FaultNotEffective(f"run {run_id} was not training on Ray after {timeout:.0f} s")
