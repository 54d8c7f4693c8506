"""Runbook §5.2.3–§5.2.5 on the host's resources: CPU hogs, memory, disk, GPU memory.

Each builder returns a `Procedure` (runbook id, title, steps) over the Target interface; a
drill names one as its `recover`, and its steps are timed on the drill's timeline.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

from opsdrill.drill.procedure import Procedure, procedure
from opsdrill.errors import UsageError
from opsdrill.recovery.cpu_hogs import OFFENDER_SHARE, CpuUser, kill_offenders, top_cpu
from opsdrill.recovery.disk_cleanup import clean_up
from opsdrill.recovery.gpu_memory import confirm_lowered, lower_gpu_settings
from opsdrill.recovery.runs_cancel import cancel_newest_running, running_runs
from opsdrill.recovery.service_restart import restart_service
from opsdrill.recovery.services import confirm_health
from opsdrill.targets.base import Target

__all__ = ["clean_disk", "kill_cpu_hogs", "lower_gpu_memory", "relieve_host_memory"]


def kill_cpu_hogs(
    target: Target, within: Path | None, threshold: float = OFFENDER_SHARE
) -> Procedure:
    """§5.2.5 "CPU": find the busy processes (top) where the app runs, kill the offenders by
    pid."""
    found: list[CpuUser] = []

    def top() -> list[str]:
        found[:] = top_cpu(target, within)
        return [f"top: {', '.join(f'pid {u.pid} {u.cpu:.0%}' for u in found[:8]) or 'nothing'}"]

    return procedure(
        "5.2.5",
        "CPU taken by other processes: find them (top) and kill them by pid",
        ("diagnose: CPU by process (top)", top),
        ("kill the offending processes by pid",
         lambda: kill_offenders(target, found, threshold)),
        ("confirm /health", confirm_health(target)),
    )  # fmt: skip


def relieve_host_memory(target: Target, count: int = 5) -> Procedure:
    """§5.2.3 host out of memory: diagnose the running runs, cancel the newest (fix 2)."""
    admin = target.endpoints.admin_dsn or target.endpoints.dsn

    def diagnose() -> str:
        runs = running_runs(admin)
        return f"running runs: {', '.join(str(r) for r, _ in runs) or 'none'}"

    def cancel() -> str:
        ids = cancel_newest_running(admin, count)
        return f"marked cancelled: {', '.join(map(str, ids)) or 'none running'}"

    return procedure(
        "5.2.3",
        "out of memory: cancel the newest running runs",
        ("diagnose: running runs", diagnose),
        (f"fix 2: mark the {count} newest running runs cancelled", cancel),
        ("confirm /health", confirm_health(target)),
    )


def clean_disk(target: Target, data_dir: PurePosixPath | str | None = None) -> Procedure:
    """§5.2.4 disk full: diagnose, delete old logs, models and temp files, confirm; where
    the app runs, with df on `data_dir` (the filesystem that filled; NF_HOME by default)."""
    home = target.endpoints.home
    if home is None:
        raise UsageError(f"target {target.name!r} names no data directory (NF_HOME)")

    def clean() -> list[str]:
        return clean_up(lambda argv: target.exec("api", argv), PurePosixPath(home),
                        data_dir=data_dir).actions  # fmt: skip

    return procedure("5.2.4", "disk full: clean up",
                     ("diagnose, delete what is old, confirm free space", clean))  # fmt: skip


def lower_gpu_memory(target: Target, read: Callable[[], tuple[Any, Path]]) -> Procedure:
    """§5.2.3 fix 3 (GPU): diagnose GPU memory, lower GPU_MEMORY_LIMIT and MAX_PARALLEL_RUNS
    where the app reads them, restart, confirm the lower values are in effect. `read` returns
    the app's effective settings (gpu_memory.effective_settings with the app's environment)."""
    before: list[Any] = []

    def diagnose() -> str:
        if shutil.which("nvidia-smi") is None:
            return "nvidia-smi not installed: GPU memory by process not available"
        done = subprocess.run(
            ["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        return "GPU memory by process: " + (done.stdout.strip().replace("\n", "; ") or "none")

    def lower() -> list[str]:
        settings, actions = lower_gpu_settings(read)
        before[:] = [settings]
        return actions

    return procedure(
        "5.2.3",
        "fix 3: GPU out of memory",
        ("diagnose: GPU memory, largest processes", diagnose),
        ("empty the CUDA cache",
         lambda: "the API holds no CUDA context; each run trains in its own worker process, "
                 "whose CUDA cache is freed when it exits"),
        ("lower GPU_MEMORY_LIMIT and MAX_PARALLEL_RUNS", lower),
        ("restart (§5.3.1)", lambda: restart_service(target, polls=120, interval=0.5)),
        ("confirm the lower settings are in effect", lambda: confirm_lowered(before[0], read()[0])),
    )  # fmt: skip
