"""Runbook §5.2.3, GPU case: `CUDA out of memory` in a training run, recovered per the runbook.

Another process holds the GPU's memory (GpuOom), so the next training run fails with
`torch.cuda.OutOfMemoryError`. Recovery as the runbook orders it: GPU_MEMORY_LIMIT 0.7 and
MAX_PARALLEL_RUNS 2 in conf/config.yaml, restart the service; the fault's revert frees the GPU.
Without CUDA the drill skips and says so: there is no GPU memory to exhaust.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import yaml

from opsdrill.drill import Detector, DrillSpec, run_drill
from opsdrill.faults.gpu_oom import GpuOom, cuda_available
from opsdrill.targets.base import Target
from opsdrill.targets.local import LocalTarget

from .conftest import AssertDrill, Probes

pytestmark = [
    pytest.mark.destructive,
    pytest.mark.gpu,
    pytest.mark.runbook("5.2.3"),
    pytest.mark.fault("gpu_oom"),
]

RUN = {
    "series_id": "airpassengers",
    "model_name": "MLP",
    "horizon": 12,
    "max_steps": 5,
    "run_name": "opsdrill-gpu-oom",
}


@pytest.fixture
def gpu_target(target: Target) -> LocalTarget:
    if not isinstance(target, LocalTarget):
        pytest.skip("the GPU drill runs a memory holder on the embedded stack's host only")
    if not cuda_available():
        pytest.skip("torch sees no CUDA device here (CPU build or no GPU): nothing to exhaust")
    return target


def _lower_gpu_settings(target: LocalTarget) -> list[str]:
    """§5.2.3 fix 3: GPU_MEMORY_LIMIT 0.7, MAX_PARALLEL_RUNS 2 in the config file, restart."""
    path = target.home / "conf" / "config.yaml"
    config: dict[str, Any] = yaml.safe_load(path.read_text()) or {} if path.exists() else {}
    config.update(gpu_memory_limit=0.7, max_parallel_runs=2)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config))
    target.service("api").restart(timeout=120)
    return [f"§5.2.3 fix 3: gpu_memory_limit 0.7, max_parallel_runs 2 in {path}; app restarted"]


def test_cuda_oom_fails_the_run_and_is_recovered(
    gpu_target: LocalTarget, probes: Probes, incident_dir: Path, assert_drill: AssertDrill
) -> None:
    target = gpu_target
    ep = target.endpoints
    state: dict[str, int] = {}

    def run_failed_with_cuda_oom() -> bool:
        if "run_id" not in state:
            resp = httpx.post(
                f"{ep.api_url}/runs", json=RUN, timeout=10, headers={"X-API-Key": ep.api_key or ""}
            )
            state["run_id"] = int(resp.json()["run_id"])
        with psycopg.connect(ep.dsn, connect_timeout=5) as conn:
            rows = conn.execute(
                "SELECT exception_type FROM system_logs WHERE run_id = %s AND log_level = 'ERROR'",
                (state["run_id"],),
            ).fetchall()
        return any(kind == "OutOfMemoryError" for (kind,) in rows)

    spec = DrillSpec(
        name="gpu-oom",
        title="CUDA out of memory in a training run",
        runbook="5.2.3",
        severity="P2",
        fault=GpuOom(target),
        effect=Detector(
            "a run fails with torch.cuda.OutOfMemoryError", run_failed_with_cuda_oom, 300
        ),
        detectors=[probes.health_is(200)],  # the API is not on the GPU: it must stay up
        steady=probes.steady(),
        recover=lambda: _lower_gpu_settings(target),
        availability_url=f"{ep.api_url}/health",
        dsn=ep.dsn,
        recovery_timeout=120,
    )
    assert_drill(run_drill(spec, incident_dir))
