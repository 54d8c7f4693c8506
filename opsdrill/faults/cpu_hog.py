"""Busy-loop processes competing with the app for CPU: runbook §5.2.5 (slow API).

Each hog is a real process spinning in a loop where the app runs (`Target.exec`). Their pids
and start times are journaled as they start, they are stopped by pid with an identity check
(a recycled pid is never signalled; `ServiceProcess`), and each exits by itself after
`max_seconds` even if nobody reverts it.
"""

from __future__ import annotations

import os

from opsdrill.errors import FaultNotEffective
from opsdrill.faults.base import JOURNAL, Fault, register
from opsdrill.targets.base import Target
from opsdrill.targets.service_process import ServiceProcess

__all__ = ["HOG_CODE", "CpuHog"]

HOG_CODE = """
import sys, time
end = time.monotonic() + float(sys.argv[1])
while time.monotonic() < end:
    for _ in range(100_000):
        pass
"""
#: the hogs run beside the app, where its requests are served
SERVICE = "api"


@register
class CpuHog(Fault):
    """N processes burn CPU; requests queue for the processor and latency rises."""

    kind = "cpu_hog"

    needs = JOURNAL | {"exec"}
    blast_radius = "every process where the app runs: API latency, training time, monitoring"
    undo_summary = "stop each hog by its journaled pid and start time"

    def __init__(
        self, target: Target, *, count: int | None = None, max_seconds: float = 120.0
    ) -> None:
        count = count if count is not None else 2 * (os.cpu_count() or 1)
        super().__init__(target, count=count, max_seconds=max_seconds)

    def refs(self) -> list[ServiceProcess]:
        return [ServiceProcess.of(self.target, rec) for rec in self.entry.undo.get("hogs", [])]

    def _inject(self) -> None:
        hogs: list[list[object]] = []
        argv = [self.target.python, "-c", HOG_CODE, str(self.params["max_seconds"])]
        for _ in range(self.params["count"]):
            hogs.append(ServiceProcess.start(self.target, SERVICE, argv).record())
            self.save_undo(hogs=hogs)  # journaled one by one: a kill mid-way loses none
        if not any(r.alive() for r in self.refs()):
            raise FaultNotEffective("no CPU hog process is running")

    def _revert(self) -> None:
        for ref in self.refs():
            ref.kill()
        for ref in self.refs():
            ref.wait_gone(5.0)
