"""Another process holds the GPU's memory: runbook §5.2.3's `CUDA out of memory` case.

A helper process allocates all but `leave_mb` of the free GPU memory and keeps it, so a
training run's first CUDA allocations fail with `torch.cuda.OutOfMemoryError`. Its pid and
start time are journaled before it allocates; the revert kills it by pid (the memory is
freed with the process), and it exits by itself after `max_seconds` if nobody reverts it.
Without CUDA the fault refuses: there is no GPU memory to exhaust.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from opsdrill.errors import FaultNotEffective
from opsdrill.faults.base import Fault, register
from opsdrill.processes import ProcessRef, spawn
from opsdrill.targets.local import LocalTarget

__all__ = ["HOLD_CODE", "GpuOom", "cuda_available"]

HOLD_CODE = """
import sys, time, torch
free, _total = torch.cuda.mem_get_info()
keep = max(0, free - int(sys.argv[1]) * 2**20)
block = torch.empty(keep, dtype=torch.uint8, device="cuda")
print(f"holding {keep // 2**20} MiB of GPU memory", flush=True)
time.sleep(float(sys.argv[2]))
"""


def cuda_available() -> bool:
    """True when torch sees a CUDA device (asked in a subprocess: no CUDA context here)."""
    done = subprocess.run(
        [sys.executable, "-c", "import torch; print(torch.cuda.is_available())"],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    return done.stdout.strip() == "True"


@register
class GpuOom(Fault):
    """GPU memory taken by another process: training runs fail with CUDA out of memory."""

    kind = "gpu_oom"
    blast_radius = "training runs that start while it lasts; forecasts on CPU are unaffected"
    undo_summary = "kill the process holding the GPU memory by its journaled pid"

    def __init__(
        self, target: LocalTarget, *, leave_mb: int = 16, max_seconds: float = 300.0
    ) -> None:
        super().__init__(target, leave_mb=leave_mb, max_seconds=max_seconds)

    def _inject(self) -> None:
        if not cuda_available():
            raise FaultNotEffective("torch sees no CUDA device, so there is no GPU memory to fill")
        log = self.target.state_dir / "logs" / "gpu_oom.log"
        offset = log.stat().st_size if log.exists() else 0
        argv = [sys.executable, "-c", HOLD_CODE, str(self.params["leave_mb"]),
                str(self.params["max_seconds"])]  # fmt: skip
        ref = spawn(argv, log=log)
        self.save_undo(holder=[ref.pid, ref.ticks])
        deadline = time.monotonic() + 60
        while "holding" not in log.read_text()[offset:]:
            if not ref.alive() or time.monotonic() > deadline:
                raise FaultNotEffective(f"the GPU memory holder did not start; see {log}")
            time.sleep(0.1)

    def _revert(self) -> None:
        if holder := self.entry.undo.get("holder"):
            ref = ProcessRef(*holder)
            ref.signal(signal.SIGKILL)
            ref.wait_gone(10.0)
