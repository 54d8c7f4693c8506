"""Runbook §5.2.3, host case: a training worker exceeds its memory and the kernel kills it.

The stack's workers run in a memory cgroup, v1 or v2 (NF_WORKER_CGROUP_PROCS); the fault lowers
its limit below what a worker needs, so the OOM killer SIGKILLs the worker for real. The run
must end `failed` naming the signal, the API (outside the group) must answer 200 throughout,
and once the limit is restored the next run must complete.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from opsdrill.drill import Detector
from opsdrill.drill.procedure import Procedure, Step
from opsdrill.drill.standard import StandardDrill
from opsdrill.errors import CapabilityMissing
from opsdrill.faults.host_oom import HostOom
from opsdrill.recovery.host_resources import relieve_host_memory
from opsdrill.targets.base import Target
from opsdrill.targets.first_data import wait_for_run

pytestmark = [
    pytest.mark.destructive,
    pytest.mark.runbook("5.2.3"),
    pytest.mark.fault("host_oom"),
]

RUN = {"series_id": "airpassengers", "model_name": "MLP", "horizon": 12, "max_steps": 5}


@pytest.fixture
def cgroup_target(target: Target) -> Target:
    try:
        target.memory("worker")
    except CapabilityMissing as exc:
        pytest.skip(f"the workers have no memory limit of their own: {exc}")
    return target


def _submit(target: Target, name: str) -> int:
    ep = target.endpoints
    resp = httpx.post(
        f"{ep.api_url}/runs",
        json={**RUN, "run_name": name},
        timeout=10,
        headers={"X-API-Key": ep.api_key or ""},
    )
    assert resp.status_code == 201, resp.text
    return int(resp.json()["run_id"])


class OomWatch:
    """Submits a run on first use; then: has the cgroup's OOM killer struck, and the run failed?"""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.before = target.oom_kills("worker")
        self.run_id: int | None = None
        self.run: dict[str, Any] = {}

    def oom_killed(self) -> bool:
        if self.run_id is None:
            self.run_id = _submit(self.target, "opsdrill-oom")
        return self.target.oom_kills("worker") > self.before

    def run_failed_with_sigkill(self) -> bool:
        url = self.target.endpoints.api_url
        self.run = httpx.get(f"{url}/runs/{self.run_id}", timeout=5).json()
        return self.run["status"] == "failed" and "SIGKILL" in (self.run["error_message"] or "")


def test_worker_oom_kill_fails_the_run_and_spares_the_api(
    cgroup_target: Target, drill: StandardDrill
) -> None:
    target = cgroup_target
    watch = OomWatch(target)

    def memory() -> str:  # §5.2.3 diagnose: memory, largest consumers, running runs
        now = target.memory("worker")
        return (
            f"workers' memory limit {(now.limit_bytes or 0) // 2**20} MiB, "
            f"peak {now.peak_bytes // 2**20} MiB, OOM kills "
            f"{target.oom_kills('worker') - watch.before} during the drill; run {watch.run_id} "
            f"{watch.run.get('status')}: {watch.run.get('error_message')}"
        )

    runbook = relieve_host_memory(target)

    steps = (Step("diagnose: memory of the workers", memory), *runbook.steps)
    recover = Procedure(runbook.runbook, runbook.title, steps)

    spec = drill.spec(
        name="host-oom",
        title="Training worker killed by the kernel OOM killer (host out of memory)",
        severity="P2",
        fault=HostOom(target, limit_mb=120),
        effect=Detector("the cgroup's OOM killer killed a worker", watch.oom_killed, 180),
        detectors=[Detector("run failed, SIGKILL named", watch.run_failed_with_sigkill, 60)],
        also_steady=[
            Detector(
                "no worker left in the memory group", lambda: target.memory("worker").processes == 0
            ),
        ],
        recover=recover,
    )
    result = drill.run(spec, check=False)
    for action in result.actions:
        print(f"  {action}")
    drill.verify(result)
    assert result.failed_probes == 0, "the API must answer 200 while a worker is OOM-killed"
    after = wait_for_run(target.endpoints.api_url, _submit(target, "opsdrill-after-oom"), 300)
    assert after["status"] == "completed", f"the next run did not complete: {after}"
