"""Lower the memory limit of the training workers' cgroup: runbook §5.2.3 (host out of memory).

The stack's workers join a memory cgroup (`LocalTarget.worker_cgroup`, given to the app as
NF_WORKER_CGROUP_PROCS) that is unlimited while healthy: cgroup v1's memory controller or a
cgroup v2 group, the variant chosen when the cgroup object is built
(`opsdrill.targets.worker_cgroup`). This fault lowers its limit (v1 `memory.limit_in_bytes`
and memsw; v2 `memory.max`, with `memory.swap.max` 0) below what a worker needs, so the
kernel's OOM killer SIGKILLs the next worker for real, while the API, outside the group, keeps
serving. The previous limits are journaled first; the revert writes them back.
"""

from __future__ import annotations

from pathlib import Path

from opsdrill.errors import FaultNotEffective
from opsdrill.faults.base import Fault, register
from opsdrill.targets.local import LocalTarget
from opsdrill.targets.worker_cgroup import WorkerCgroup

__all__ = ["HostOom", "oom_kills"]

MB = 1024 * 1024


def oom_kills(cgroup: Path) -> int:
    """The cgroup's OOM-kill count (v1 memory.oom_control, v2 memory.events), 0 if none."""
    return WorkerCgroup.at(cgroup).oom_kills()


@register
class HostOom(Fault):
    """Training workers' memory limit below what a worker needs: the kernel OOM-kills them."""

    kind = "host_oom"
    blast_radius = "training runs started while it lasts (their workers); the API is outside"
    undo_summary = "restore the worker cgroup's previous memory limits"

    def __init__(self, target: LocalTarget, *, limit_mb: int = 120) -> None:
        super().__init__(target, limit_mb=limit_mb)

    def _cgroup(self) -> WorkerCgroup:
        cgroup = self.target.worker_cgroup
        if cgroup is None or not cgroup.path.is_dir():
            raise FaultNotEffective(
                "the stack has no worker memory cgroup (it needs root and a memory controller: "
                "cgroup v1, or v2 with memory delegated below this process's cgroup; an app "
                "started before the cgroup existed must be restarted with 'opsdrill down' and "
                "'opsdrill up')"
            )
        return cgroup

    def _inject(self) -> None:
        cgroup = self._cgroup()
        self.save_undo(
            cgroup=str(cgroup.path),
            cgroup_version=cgroup.version,
            oom_kills_before=cgroup.oom_kills(),
            **cgroup.limits(),
        )
        cgroup.lower_to(self.params["limit_mb"] * MB)

    def _revert(self) -> None:
        path = Path(self.entry.undo.get("cgroup", ""))
        if not self.entry.undo or not path.is_dir():
            return  # never lowered, or the stack's cgroup is gone with its limits
        WorkerCgroup.at(path).restore(self.entry.undo)
