"""Lower the training workers' memory limit: runbook §5.2.3 (host out of memory).

The stack's training workers have a memory limit of their own ("worker" in
`Target.set_memory_limit`: a memory cgroup on the embedded stack, the container elsewhere)
that is unlimited while healthy. This fault lowers it below what a worker needs, so the
kernel's OOM killer SIGKILLs the next worker for real, while the API keeps serving. The
previous limit and the OOM-kill count are journaled first; the revert sets the limit back.
"""

from __future__ import annotations

from opsdrill.errors import CapabilityMissing
from opsdrill.faults.base import JOURNAL, Fault, register
from opsdrill.targets.base import Target

__all__ = ["HostOom"]

MB = 1024 * 1024
SERVICE = "worker"


@register
class HostOom(Fault):
    """Training workers' memory limit below what a worker needs: the kernel OOM-kills them."""

    kind = "host_oom"

    needs = JOURNAL | {"memory_limit"}
    blast_radius = "training runs started while it lasts (their workers); the API is outside"
    undo_summary = "set the workers' memory limit back to the journaled one"

    def __init__(self, target: Target, *, limit_mb: int = 120) -> None:
        super().__init__(target, limit_mb=limit_mb)

    def _inject(self) -> None:
        before = self.target.memory(SERVICE)
        self.save_undo(
            service=SERVICE,
            previous_limit=before.limit_bytes,
            oom_kills_before=self.target.oom_kills(SERVICE),
        )
        # where the group also holds the app (a container, a unit), the limit leaves the app
        # what it uses now and gives the workers `limit_mb` on top: a worker outgrows it, and
        # the kernel kills it first (workers raise their own oom_score_adj)
        self.target.set_memory_limit(SERVICE, before.used_bytes + self.params["limit_mb"] * MB)

    def _revert(self) -> None:
        undo = self.entry.undo
        if "previous_limit" not in undo:
            return  # never lowered
        try:
            self.target.set_memory_limit(undo["service"], undo["previous_limit"])
        except CapabilityMissing:
            return  # the workers' group is gone (the stack was taken down) with its limit
