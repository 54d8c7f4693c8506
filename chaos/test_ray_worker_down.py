"""The Ray worker node SIGKILLed (its raylet, by pid) while a training run executes on it.

The run must end `failed` with the reason (the Ray task was lost with its node), not hang
`running` nor go on training unsupervised: the worker process dies with its Ray worker. It is
not retried (docs/RAY.md says why). Adding the node again the runbook's way (§7.2.1) brings
the cluster back, and the next run trains to completion on it. The API never notices beyond
/health: forecasts are served throughout.
"""

from __future__ import annotations

import pytest

from opsdrill.drill import Detector
from opsdrill.drill.procedure import procedure
from opsdrill.drill.standard import StandardDrill
from opsdrill.faults import RayWorkerDown
from opsdrill.stack.runs import NextRun, RunsClient
from opsdrill.targets.base import Target

from .ray_common import RayCluster, training_run

pytestmark = [
    pytest.mark.destructive,
    pytest.mark.runbook("7.2.1"),
    pytest.mark.fault("ray_worker_down", sig="SIGKILL"),
]

#: the reason the run must read: the Ray task lost with its node
REASON = "Ray"


def test_ray_worker_sigkill_fails_the_run_and_the_next_succeeds(
    target: Target, drill: StandardDrill
) -> None:
    if "ray_worker" not in target.services:
        pytest.skip(f"target {target.name!r} runs no Ray cluster (install 'ray[default]')")
    ray = RayCluster(target)
    client = RunsClient(target)
    api_pid = target.service("api").pid()
    run_id, worker = training_run(client, "opsdrill-ray-worker-kill")

    def run_failed_with_reason() -> bool:
        run = client.get(run_id)
        return run["status"] == "failed" and REASON in (run["error_message"] or "")

    spec = drill.spec(
        name="ray-worker-sigkill",
        title="Ray worker node killed (SIGKILL of its raylet) during a training run",
        severity="P2",
        fault=RayWorkerDown(target, sig="SIGKILL"),
        effect=Detector("the dashboard lists no worker node", lambda: ray.worker_nodes() == 0, 60),
        detectors=[
            Detector("the run in flight reads failed, naming Ray", run_failed_with_reason, 90),
            Detector("its worker process is gone", lambda: not worker.alive(), 30),
        ],
        also_steady=[Detector("a Ray worker node is alive and the app reaches Ray", ray.ready)],
        recover=procedure(
            "7.2.1",
            "add the worker node again",
            ("diagnose: the cluster's nodes", ray.status),
            ("ray start --address=HEAD --num-cpus=1", ray.restart_worker),
            ("confirm: the node is listed alive", ray.status),
        ),
        resolved=[
            Detector(
                "the next run completes on Ray",
                NextRun(client, "opsdrill-after-ray-worker").completed,
                300,
            ),
        ],
        recovery_timeout=240,
    )
    result = drill.run(spec)
    run = client.get(run_id)
    print(f"run {run_id}: {run['status']}: {run['error_message']}")
    assert run["status"] == "failed" and REASON in run["error_message"], run
    assert target.service("api").pid() == api_pid, "losing a Ray node must not restart the API"
    assert result.failed_probes == 0, f"{result.failed_probes} /health probes failed"
