"""Runbook §5.2.3, GPU case: recognise `CUDA out of memory`, and lower the GPU settings so
that the change takes effect.

What torch raises when a device's memory is taken:
- an allocation that does not fit: `torch.OutOfMemoryError` (`torch.cuda.OutOfMemoryError` is
  the same class), "CUDA out of memory. Tried to allocate …";
- no room even for the CUDA context: a `RuntimeError` — `torch.AcceleratorError` in recent
  torch — "CUDA error: out of memory".
The app logs a failed run's exception as its class name and `"<class>: <message>"`.

The runbook's fix 3 says GPU_MEMORY_LIMIT 0.7 and MAX_PARALLEL_RUNS 2; written blindly those
are often the values already in force (they are the app's defaults), and an environment
variable overrides the config file. So the fix reads the settings the app really runs with,
writes values strictly lower where they are not overridden, restarts, and checks the effective
values changed: a fix that changes nothing fails the step.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from opsdrill.errors import ServiceError
from opsdrill.targets.base import Target

__all__ = [
    "GpuSettings",
    "confirm_lowered",
    "effective_settings",
    "effective_settings_of",
    "is_cuda_oom",
    "lower_gpu_settings",
]

OOM_CLASSES = frozenset({"OutOfMemoryError"})  # torch.OutOfMemoryError, torch.cuda.OutOfMemoryError
CUDA_ERROR_CLASSES = frozenset({"RuntimeError", "AcceleratorError"})
RUNBOOK_LIMIT, RUNBOOK_PARALLEL = 0.7, 2


def is_cuda_oom(exception_type: str | None, message: str) -> bool:
    """True for what torch raises when GPU memory is exhausted (see the module docstring)."""
    text = message.lower()
    if exception_type in OOM_CLASSES:
        return "out of memory" in text
    return exception_type in CUDA_ERROR_CLASSES and "cuda" in text and "out of memory" in text


@dataclass(frozen=True)
class GpuSettings:
    gpu_memory_limit: float
    max_parallel_runs: int
    overridden: tuple[str, ...]  # env vars that override the config file


SETTINGS_CODE = """
import json, os
from nf_auto_runner import config
s = config.load()
env = [config.FIELDS[k][0] for k in ("gpu_memory_limit", "max_parallel_runs")]
print(json.dumps({"gpu_memory_limit": s.gpu_memory_limit, "max_parallel_runs":
                  s.max_parallel_runs, "config": str(s.config_path),
                  "overridden": [v for v in env if os.environ.get(v)]}))
"""


def effective_settings(env: Mapping[str, str]) -> tuple[GpuSettings, Path]:
    """The settings the app's processes load with `env` (the app's environment), and where its
    config file is, asked of the app's own config loader in a subprocess on this machine."""
    done = subprocess.run([sys.executable, "-c", SETTINGS_CODE], env=dict(env),
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    return _parse_settings(done.returncode, done.stdout, done.stderr)


def effective_settings_of(target: Target) -> tuple[GpuSettings, Path]:
    """The same, asked where the target's app runs (`Target.exec`), with its environment."""
    done = target.exec("api", [target.python, "-c", SETTINGS_CODE], timeout=60)
    return _parse_settings(done.returncode, done.stdout, done.stderr)


def _parse_settings(returncode: int, stdout: str, stderr: str) -> tuple[GpuSettings, Path]:
    if returncode != 0:
        raise ServiceError(f"could not read the app's settings: {stderr.strip()[-300:]}")
    data = json.loads(stdout)
    settings = GpuSettings(float(data["gpu_memory_limit"]), int(data["max_parallel_runs"]),
                           tuple(data["overridden"]))  # fmt: skip
    return settings, Path(data["config"])


def _lower(now: GpuSettings) -> dict[str, Any]:
    """New config values: the runbook's where they lower the setting, else half (the limit)
    or one fewer (the runs); a setting overridden by the environment is left alone."""
    new: dict[str, Any] = {}
    if "GPU_MEMORY_LIMIT" not in now.overridden:
        limit = RUNBOOK_LIMIT if now.gpu_memory_limit > RUNBOOK_LIMIT else now.gpu_memory_limit / 2
        new["gpu_memory_limit"] = max(0.05, round(limit, 2))
    if "MAX_PARALLEL_RUNS" not in now.overridden and now.max_parallel_runs > 1:
        runs = RUNBOOK_PARALLEL if now.max_parallel_runs > RUNBOOK_PARALLEL else 1
        new["max_parallel_runs"] = min(runs, now.max_parallel_runs - 1) or 1
    return new


def lower_gpu_settings(
    read: Callable[[], tuple[GpuSettings, Path]],
) -> tuple[GpuSettings, list[str]]:
    """Write lower GPU settings into the config file the app reads; (before, what was done).
    Raises ServiceError when nothing can be lowered."""
    before, path = read()
    new = _lower(before)
    if not new or new.get("gpu_memory_limit") == before.gpu_memory_limit:
        raise ServiceError(
            f"§5.2.3 fix 3: nothing to lower: GPU_MEMORY_LIMIT {before.gpu_memory_limit}, "
            f"MAX_PARALLEL_RUNS {before.max_parallel_runs}, overridden by the environment: "
            f"{', '.join(before.overridden) or 'none'}; change them where the service's "
            "environment is defined"
        )
    config: dict[str, Any] = (yaml.safe_load(path.read_text()) or {}) if path.exists() else {}
    config.update(new)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config))
    kept = [f"{v} stays (set in the service's environment)" for v in before.overridden]
    return before, [f"{path}: " + ", ".join(f"{k} {v}" for k, v in new.items()), *kept]


def confirm_lowered(before: GpuSettings, after: GpuSettings) -> str:
    """The check that the fix took effect: the effective limit is lower than before."""
    if after.gpu_memory_limit >= before.gpu_memory_limit and (
        after.max_parallel_runs >= before.max_parallel_runs
    ):
        raise ServiceError(
            f"§5.2.3 fix 3 took no effect: GPU_MEMORY_LIMIT {after.gpu_memory_limit}, "
            f"MAX_PARALLEL_RUNS {after.max_parallel_runs} as before"
        )
    return (
        f"in effect: GPU_MEMORY_LIMIT {before.gpu_memory_limit} -> {after.gpu_memory_limit}, "
        f"MAX_PARALLEL_RUNS {before.max_parallel_runs} -> {after.max_parallel_runs}"
    )
