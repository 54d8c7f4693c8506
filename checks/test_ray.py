"""Runbook §7.2.1 (Ray worker nodes joining the head): the cluster the stack trains on shows
the expected nodes alive with their resources, in the dashboard and in `ray status`, and the
app sends its runs to it.

Ray is optional: a target that runs no Ray cluster skips these with the reason.
"""

from __future__ import annotations

import time

import httpx
import pytest

from opsdrill.probes import ray as ray_probe
from opsdrill.targets.base import Target

pytestmark = [pytest.mark.readonly, pytest.mark.runbook("7.2.1")]

#: the head (schedules nothing) and at least one worker node offering CPUs
MIN_NODES = 2
#: `ray status` reads the autoscaler's report, refreshed every few seconds
STATUS_WAIT = 30.0


@pytest.fixture(scope="module")
def ray_urls(target: Target) -> tuple[str, str]:
    """(dashboard URL, GCS address) of the target's Ray cluster."""
    if "ray_head" not in target.services:
        pytest.skip(f"target {target.name!r} runs no Ray cluster (install 'ray[default]')")
    dashboard = target.service("ray_head").url or ""
    worker = target.service("ray_worker").url if "ray_worker" in target.services else None
    gcs = (worker or "").removeprefix("ray://")
    return dashboard, gcs


def test_nodes_alive_with_resources(ray_urls: tuple[str, str]) -> None:
    dashboard, _ = ray_urls
    nodes = ray_probe.alive_nodes(dashboard)
    assert nodes is not None, (
        f"the Ray dashboard at {dashboard} does not answer; fix: restart the head node "
        "(opsdrill up starts it again), then the workers"
    )
    workers = [n for n in nodes if n.cpus > 0]
    assert len(nodes) >= MIN_NODES and workers, (
        f"{len(nodes)} alive Ray node(s), {len(workers)} with CPUs: training runs cannot be "
        "scheduled; fix: start a worker node (runbook 7.2.1: ray start --address=HEAD:PORT "
        "--num-cpus=$(nproc))"
    )


def test_ray_status_agrees(ray_urls: tuple[str, str]) -> None:
    dashboard, gcs = ray_urls
    if not gcs:
        pytest.skip("the target names no GCS address for `ray status`")
    expected = len(ray_probe.alive_nodes(dashboard) or [])
    deadline = time.monotonic() + STATUS_WAIT
    status = ray_probe.ray_status(gcs)
    while (status is None or status.active != expected) and time.monotonic() < deadline:
        time.sleep(2)
        status = ray_probe.ray_status(gcs)
    assert status is not None, f"`ray status --address={gcs}` failed"
    assert status.active == expected and status.cpus_total > 0, (
        f"`ray status` lists {status.active} active node(s) and {status.cpus_total:g} CPUs; "
        f"the dashboard {expected} alive:\n{status.text}"
    )


def test_app_trains_on_the_cluster(ray_urls: tuple[str, str], api: httpx.Client) -> None:
    ray = api.get("/health").json()["components"].get("ray")
    assert ray is not None, "/health reports no Ray cluster: the app trains its runs locally"
    assert ray["status"] == "ok", f"the app cannot reach its Ray cluster: {ray}"
