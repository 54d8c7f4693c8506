"""Lower the memory limit of the training workers' cgroup: runbook §5.2.3 (host out of memory).

The stack's workers join a cgroup v1 memory group (`LocalTarget.worker_cgroup`, given to the
app as NF_WORKER_CGROUP_PROCS) that is unlimited while healthy. This fault sets its
`memory.limit_in_bytes` (and `memory.memsw.limit_in_bytes` where swap is accounted) below what
a worker needs, so the kernel's OOM killer SIGKILLs the next worker for real, while the API,
outside the group, keeps serving. The previous limits are journaled first; the revert writes
them back (memsw before memory when raising, as the kernel requires memsw >= memory).
"""

from __future__ import annotations

from pathlib import Path

from opsdrill.errors import FaultNotEffective
from opsdrill.faults.base import Fault, register
from opsdrill.targets.local import LocalTarget, WorkerCgroup

__all__ = ["HostOom", "oom_kills"]

MB = 1024 * 1024


def oom_kills(cgroup: Path) -> int:
    """The cgroup's OOM-kill count (`oom_kill` in memory.oom_control), 0 if it has none."""
    for line in (cgroup / "memory.oom_control").read_text().splitlines():
        key, _, value = line.partition(" ")
        if key == "oom_kill":
            return int(value)
    return 0


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
                "the stack has no worker memory cgroup (it needs root and cgroup v1 memory; "
                "an app started before the cgroup existed must be restarted with 'opsdrill "
                "down' and 'opsdrill up')"
            )
        return cgroup

    def _inject(self) -> None:
        path = self._cgroup().path
        memsw = path / "memory.memsw.limit_in_bytes"
        self.save_undo(
            cgroup=str(path),
            limit=(path / "memory.limit_in_bytes").read_text().strip(),
            memsw=memsw.read_text().strip() if memsw.exists() else None,
            oom_kills_before=oom_kills(path),
        )
        limit = str(self.params["limit_mb"] * MB)
        (path / "memory.limit_in_bytes").write_text(limit)  # lowering: memory first
        if memsw.exists():
            memsw.write_text(limit)

    def _revert(self) -> None:
        path = Path(self.entry.undo.get("cgroup", ""))
        if not self.entry.undo or not path.is_dir():
            return  # never lowered, or the stack's cgroup is gone with its limits
        if (memsw := self.entry.undo.get("memsw")) is not None:
            (path / "memory.memsw.limit_in_bytes").write_text(memsw)  # raising: memsw first
        (path / "memory.limit_in_bytes").write_text(self.entry.undo["limit"])
