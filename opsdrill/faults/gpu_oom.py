"""Another process holds the GPU's memory: runbook §5.2.3's `CUDA out of memory` case.

A helper process allocates all but `leave_mb` of the free GPU memory and keeps it, so a
training run's first CUDA allocations fail with `torch.cuda.OutOfMemoryError`. Its pid and
start time are journaled as it starts where the app runs (`Target.exec`, the app's own torch);
the revert kills it by pid (the memory is freed with the process; `ServiceProcess`), and it
exits by itself after `max_seconds` if nobody reverts it. It says it holds the memory by
creating a marker file in the app's data directory (`Target.files`).
Without CUDA the fault refuses: there is no GPU memory to exhaust.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import PurePosixPath

from opsdrill.errors import FaultNotEffective
from opsdrill.faults.base import JOURNAL, Fault, register
from opsdrill.polling import poll
from opsdrill.targets.base import Target
from opsdrill.targets.service_process import ServiceProcess

__all__ = ["HOLD_CODE", "GpuOom", "cuda_available"]

SERVICE = "api"

HOLD_CODE = """
import sys, time, torch
free, _total = torch.cuda.mem_get_info()
keep = max(0, free - int(sys.argv[1]) * 2**20)
block = torch.empty(keep, dtype=torch.uint8, device="cuda")
print(f"holding {keep // 2**20} MiB of GPU memory", flush=True)
open(sys.argv[3], "w").close()
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

    needs = JOURNAL | {"exec", "service_files", "gpu"}
    blast_radius = "training runs that start while it lasts; forecasts on CPU are unaffected"
    undo_summary = "kill the process holding the GPU memory by its journaled pid"

    def __init__(self, target: Target, *, leave_mb: int = 16, max_seconds: float = 300.0) -> None:
        super().__init__(target, leave_mb=leave_mb, max_seconds=max_seconds)

    def _marker(self) -> PurePosixPath:
        home = self.target.endpoints.home
        if home is None:
            raise FaultNotEffective(f"target {self.target.name!r} names no data directory")
        return PurePosixPath(home) / f".opsdrill-gpu-holder-{self.entry.fault_id}"

    def _inject(self) -> None:
        if not cuda_available():
            raise FaultNotEffective("torch sees no CUDA device, so there is no GPU memory to fill")
        files, marker = self.target.files(SERVICE), self._marker()
        argv = [self.target.python, "-c", HOLD_CODE, str(self.params["leave_mb"]),
                str(self.params["max_seconds"]), str(marker)]  # fmt: skip
        holder = ServiceProcess.start(self.target, SERVICE, argv)
        self.save_undo(holder=holder.record(), marker=str(marker))

        def started() -> bool | None:
            return files.exists(marker) or (None if holder.alive() else False)

        if not poll(started, 60, interval=0.1):
            raise FaultNotEffective(
                f"the GPU memory holder (pid {holder.pid}) did not start; see the logs "
                f"of what ran where {SERVICE} runs"
            )

    def _revert(self) -> None:
        undo = self.entry.undo
        if holder := undo.get("holder"):
            ref = ServiceProcess.of(self.target, holder)
            if ref.kill():
                ref.wait_gone(10.0)
        if marker := undo.get("marker"):
            self.target.files(SERVICE).remove(marker)
