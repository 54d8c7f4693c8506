"""The Ray head SIGKILLed (its GCS server, by pid): the cluster cannot take tasks.

The API must stay healthy (/health 200, Ray listed as degraded, forecasts served) and refuse
new training runs with a clear 503 naming the Ray cluster, instead of accepting runs that
cannot execute. The §5.3.1-style restart of the head (then of the worker node, which does not
survive a new head) brings training back: the next run completes on Ray.
"""

from __future__ import annotations

import pytest

from opsdrill.drill import Detector
from opsdrill.drill.procedure import procedure
from opsdrill.drill.standard import StandardDrill
from opsdrill.faults import RayHeadDown
from opsdrill.stack.runs import NextRun, RunsClient
from opsdrill.targets.base import Target

from .ray_common import RayCluster

pytestmark = [
    pytest.mark.destructive,
    pytest.mark.runbook("5.3.1"),
    pytest.mark.fault("ray_head_down", sig="SIGKILL"),
]


def test_ray_head_sigkill_refuses_training_keeps_the_api_healthy(
    target: Target, drill: StandardDrill
) -> None:
    if "ray_head" not in target.services:
        pytest.skip(f"target {target.name!r} runs no Ray cluster (install 'ray[default]')")
    ray = RayCluster(target)
    client = RunsClient(target)
    api_pid = target.service("api").pid()
    refusals: list[str] = []

    def training_refused() -> bool:
        body = {"series_id": "airpassengers", "model_name": "MLP", "horizon": 12,
                "max_steps": 5, "run_name": "opsdrill-while-ray-down"}  # fmt: skip
        resp = client.api.request("POST", "/runs", json=body, key=True, timeout=5)
        if resp.status_code == 201:  # accepted: it could not execute; do not leave it queued
            client.cancel(int(resp.json()["run_id"]), "opsdrill: accepted while Ray was down")
            return False
        detail = str(resp.json().get("detail", "")) if resp.status_code == 503 else ""
        refusals.append(detail)
        return "Ray cluster" in detail

    spec = drill.spec(
        name="ray-head-sigkill",
        title="Ray head node killed (SIGKILL of its GCS server)",
        severity="P2",
        fault=RayHeadDown(target, sig="SIGKILL"),
        effect=Detector("the Ray dashboard does not answer", lambda: ray.worker_nodes() == -1, 30),
        detectors=[
            Detector("/health 200 says Ray degraded", lambda: ray.app_sees("degraded"), 15),
            Detector("POST /runs refused with 503 naming the Ray cluster", training_refused, 15),
        ],
        also_steady=[Detector("a Ray worker node is alive and the app reaches Ray", ray.ready)],
        recover=procedure(
            "5.3.1",
            "restart the Ray cluster (head, then the worker node)",
            ("diagnose: the cluster's nodes", ray.status),
            ("start the head node, then the worker node (7.2.1)", ray.restart_cluster),
            ("confirm: the nodes are listed alive", ray.status),
        ),
        resolved=[
            Detector(
                "the next run completes on Ray",
                NextRun(client, "opsdrill-after-ray-head").completed,
                300,
            ),
        ],
        recovery_timeout=240,
    )
    result = drill.run(spec)
    print(f"refusal while Ray was down: {refusals[-1] if refusals else 'none'}")
    assert target.service("api").pid() == api_pid, "losing the Ray head must not restart the API"
    assert result.failed_probes == 0, f"{result.failed_probes} /health probes failed"
