"""§5.2.3 GPU: the CUDA-OOM detector matches what torch raises; the fix lowers what is in force.

No CUDA here, so the detector is tested against torch's real exception classes and messages
(as the app logs them: class name, "<class>: <message>"); the fix runs the app's own config
loader in a subprocess, as the app's processes would.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import yaml

from opsdrill.errors import ServiceError
from opsdrill.recovery.gpu_memory import (
    confirm_lowered,
    effective_settings,
    is_cuda_oom,
    lower_gpu_settings,
)

ALLOC = ("CUDA out of memory. Tried to allocate 20.00 MiB. GPU 0 has a total capacity of "
         "7.79 GiB of which 3.25 MiB is free.")  # fmt: skip


def _logged(exc: BaseException) -> tuple[str, str]:
    """(exception_type, log_message) as nf_auto_runner's worker records a failed run."""
    kind = type(exc).__name__
    return kind, f"run 7 failed: {kind}: {exc}"


@pytest.mark.parametrize(
    "exc",
    [
        torch.OutOfMemoryError(ALLOC),
        torch.cuda.OutOfMemoryError(ALLOC),
        RuntimeError(
            "CUDA error: out of memory\nCUDA kernel errors might be asynchronously "
            "reported at some other API call"
        ),
        torch.AcceleratorError("CUDA error: out of memory"),
    ],
    ids=["OutOfMemoryError", "cuda.OutOfMemoryError", "RuntimeError-context", "AcceleratorError"],
)
def test_cuda_oom_is_recognised_as_torch_raises_it(exc: BaseException) -> None:
    assert is_cuda_oom(*_logged(exc))


@pytest.mark.parametrize(
    "exc",
    [
        MemoryError("Unable to allocate 3.00 GiB"),  # host OOM, not the GPU
        RuntimeError("CUDA error: device-side assert triggered"),
        RuntimeError("DataLoader worker (pid 12) is killed by signal: Killed."),
        ValueError("out of memory budget for horizon"),
    ],
)
def test_other_failures_are_not_cuda_oom(exc: BaseException) -> None:
    assert not is_cuda_oom(*_logged(exc))


@pytest.fixture
def app_env(tmp_path: Path) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if k not in ("GPU_MEMORY_LIMIT", "MAX_PARALLEL_RUNS")
    }
    env["NF_HOME"] = str(tmp_path)
    env.pop("NF_CONFIG", None)
    return env


def test_the_fix_lowers_the_settings_in_force_and_they_take_effect(
    app_env: dict[str, str], tmp_path: Path
) -> None:
    read = lambda: effective_settings(app_env)  # noqa: E731
    before, path = read()
    assert (before.gpu_memory_limit, before.max_parallel_runs) == (0.7, 2), "the app's defaults"
    # the old fix wrote the runbook's 0.7 and 2: exactly what is already in force
    path.parent.mkdir(parents=True)
    path.write_text(yaml.safe_dump({"gpu_memory_limit": 0.7, "max_parallel_runs": 2}))
    with pytest.raises(ServiceError, match="took no effect"):
        confirm_lowered(before, read()[0])
    _, actions = lower_gpu_settings(read)
    after = read()[0]
    assert after.gpu_memory_limit < 0.7 and after.max_parallel_runs == 1, actions
    assert "GPU_MEMORY_LIMIT 0.7 -> 0.35" in confirm_lowered(before, after)


def test_a_setting_the_environment_overrides_is_left_alone_and_said(
    app_env: dict[str, str],
) -> None:
    app_env["MAX_PARALLEL_RUNS"] = "2"  # what LocalTarget's app environment sets
    read = lambda: effective_settings(app_env)  # noqa: E731
    read()
    _, actions = lower_gpu_settings(read)
    after = read()[0]
    assert after.max_parallel_runs == 2 and after.gpu_memory_limit == 0.35
    assert any("MAX_PARALLEL_RUNS stays" in a for a in actions), actions
    app_env["GPU_MEMORY_LIMIT"] = "0.7"
    with pytest.raises(ServiceError, match="nothing to lower"):
        lower_gpu_settings(read)
