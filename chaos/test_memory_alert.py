"""Runbook §4.2 HighMemoryUsage and §5.2.3: memory above 85 %, fixed by cancelling the newest runs.

The rule watches a machine (`1 - MemAvailable / MemTotal > 0.85`). This host has 24 GiB and is
shared: driving it past 85 % means taking ~17 GiB from everything else on it, which could
OOM-kill other people's work, so the drill does not. Instead the embedded stack shows the
production rule a smaller machine: the training workers' memory cgroup, exported as a node the
way LXCFS shows a container its memory (opsdrill/monitoring/cgroup_exporter.py, service
`cgroup_exporter`, job `node`). A real training run fills it: the cgroup's limit is set
(HostOom, the same fault as the OOM drill, but with headroom) so the worker's real resident
memory is about 90 % of it. HighMemoryUsage fires and is delivered; §5.2.3 fix 2 cancels the
newest running run, its worker's memory is freed, and the alert resolves, in Prometheus and
at the receiver.
"""

from __future__ import annotations

import time

import httpx
import pytest

from opsdrill.drill import Detector, DrillResult
from opsdrill.drill.procedure import procedure
from opsdrill.drill.standard import StandardDrill
from opsdrill.errors import FaultNotEffective
from opsdrill.faults import HostOom, RunawayRuns
from opsdrill.stack.runs import RunsClient
from opsdrill.targets.base import Target

from .test_cancel_running import TRAINING_RSS, CancelEvidence, cancel_newest_running

pytestmark = [
    pytest.mark.destructive,
    pytest.mark.runbook("4.2"),
    pytest.mark.fault("host_oom"),
]

#: the worker's memory as a share of the limit the drill sets: above the rule's 85 %, with
#: 10 % headroom so the kernel reclaims page cache rather than OOM-killing the worker
FILL = 0.90
MiB = 2**20
SETTLED = 12  # 6 s of steady resident memory


def node_memory(url: str) -> tuple[float, float]:
    """(MemTotal, MemAvailable) from the cgroup exporter now."""
    values = {}
    for line in httpx.get(f"{url}/metrics", timeout=2).text.splitlines():
        if line.startswith("node_memory_"):
            name, value = line.split()
            values[name] = float(value)
    return values["node_memory_MemTotal_bytes"], values["node_memory_MemAvailable_bytes"]


def used_ratio(url: str) -> float:
    total, available = node_memory(url)
    return 1 - available / total


def wait_training_settled(client: RunsClient, fault: RunawayRuns, timeout: float = 180) -> None:
    """Until the run's worker trains and its resident memory is steady (SETTLED samples, 0.5 s
    apart, within 2 %): the limit is sized from it. A worker pauses for a second or two at
    about half its training size after its imports; the fitting loop's plateau lasts minutes."""
    deadline, samples = time.monotonic() + timeout, list[int]()
    while time.monotonic() < deadline:
        worker = client.worker(fault.run_ids[0])
        samples = [*samples[-(SETTLED - 1) :], worker.rss() if worker is not None else 0]
        steady = min(samples) > TRAINING_RSS and max(samples) < 1.02 * min(samples)
        if len(samples) == SETTLED and steady:
            return
        time.sleep(0.5)
    raise FaultNotEffective(f"run {fault.run_ids} was not training steadily after {timeout:.0f} s")


def memory_alert_drill(drill: StandardDrill) -> DrillResult:
    """Run the drill; the training run behind it is cancelled whatever happens."""
    target, probes = drill.target, drill.probes
    client = RunsClient(target)
    node = target.service("cgroup_exporter").url or ""
    runaway = RunawayRuns(target, count=1, max_steps=5000)  # type: ignore[arg-type]
    fired, cleared = probes.alert_cycle("HighMemoryUsage", 60)
    paged, unpaged = probes.delivery_cycle("HighMemoryUsage", 90)
    try:
        runaway.inject()
        wait_training_settled(client, runaway)
        total, available = node_memory(node)
        limit_mb = int((total - available) / FILL / MiB) + 1
        high = Detector("the workers' node uses > 85 % of its memory",
                        lambda: used_ratio(node) > 0.85, 30)  # fmt: skip
        low = Detector("the workers' node uses < 85 % of its memory",
                       lambda: used_ratio(node) < 0.85, 30)  # fmt: skip
        spec = drill.spec(
            name="alert-high-memory",
            title="HighMemoryUsage fires on a training worker filling its memory and is delivered",
            runbook="5.2.3",
            severity="P2",
            fault=HostOom(target, limit_mb=limit_mb),  # type: ignore[arg-type]
            effect=high,
            detectors=[*fired, *paged],
            recover=procedure(
                "5.2.3",
                "fix 2: cancel the newest running runs",
                (
                    "cancel the newest running run",
                    lambda: cancel_newest_running(client, CancelEvidence()),
                ),
            ),
            resolved=[low, *cleared, *unpaged],
            dsn=target.endpoints.dsn,
        )
        return drill.run(spec, check=False)
    finally:
        runaway.revert()


def test_high_memory_usage_fires_on_real_worker_memory_and_resolves(
    target: Target, drill: StandardDrill
) -> None:
    if "cgroup_exporter" not in target.services or "alert_sink" not in target.services:
        pytest.skip("needs the stack's worker cgroup exported as a node (root, cgroup v1 "
                    "memory), Prometheus, Alertmanager and the alert sink")  # fmt: skip
    result = memory_alert_drill(drill)
    for action in result.actions:
        print(f"  {action}")
    drill.verify(result)
