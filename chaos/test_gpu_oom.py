"""Runbook §5.2.3, GPU case: `CUDA out of memory` in a training run, recovered per the runbook.

Another process holds the GPU's memory (GpuOom), so the next training run fails with
`torch.OutOfMemoryError` (or, with no room for a CUDA context, a RuntimeError "CUDA error: out
of memory"; `gpu_memory.is_cuda_oom` matches both). Recovery is §5.2.3 fix 3 as
`procedures.lower_gpu_memory`: GPU_MEMORY_LIMIT and MAX_PARALLEL_RUNS lowered where the app
reads them (never to values already in force, never where the environment overrides the
file), restart, and the lower values confirmed in effect; the fault's revert frees the GPU.
The config file is restored after the drill. Without CUDA the drill skips and says so.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import psycopg
import pytest

from opsdrill.drill import Detector
from opsdrill.drill.standard import StandardDrill
from opsdrill.faults.gpu_oom import GpuOom, cuda_available
from opsdrill.recovery.gpu_memory import effective_settings_of, is_cuda_oom
from opsdrill.recovery.host_resources import lower_gpu_memory
from opsdrill.targets.base import Target

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
def gpu_target(target: Target) -> Target:
    if not cuda_available():
        pytest.skip("torch sees no CUDA device here (CPU build or no GPU): nothing to exhaust")
    return target


@pytest.fixture
def config_restored(gpu_target: Target) -> Iterator[None]:
    """The drill's fix edits the app's config file: put it back as it was afterwards."""
    _, path = effective_settings_of(gpu_target)
    saved = path.read_bytes() if path.exists() else None
    yield
    if saved is None:
        path.unlink(missing_ok=True)
    else:
        path.write_bytes(saved)
    gpu_target.service("api").restart(timeout=120)


def test_cuda_oom_fails_the_run_and_is_recovered(
    gpu_target: Target,
    config_restored: None,
    drill: StandardDrill,
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
                "SELECT exception_type, log_message FROM system_logs "
                "WHERE run_id = %s AND log_level = 'ERROR'",
                (state["run_id"],),
            ).fetchall()
        return any(is_cuda_oom(kind, message) for kind, message in rows)

    spec = drill.spec(
        name="gpu-oom",
        title="CUDA out of memory in a training run",
        severity="P2",
        fault=GpuOom(target),
        effect=Detector("a run fails with CUDA out of memory", run_failed_with_cuda_oom, 300),
        detectors=[drill.probes.health_is(200)],  # the API is not on the GPU: it must stay up
        recover=lower_gpu_memory(target, lambda: effective_settings_of(target)),
        recovery_timeout=120,
    )
    drill.run(spec)
