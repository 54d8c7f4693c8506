"""Freeze a service's processes (a container's cgroup freezer): runbook §5.2.1, the service
that runs but answers nothing.

Unlike a kill, nothing exits and nothing restarts: the process keeps its pid and its memory,
and every connection to it hangs. The service is journaled before it is frozen; the revert
thaws it, so `opsdrill rollback` in another process undoes it after a SIGKILLed runner.
"""

from __future__ import annotations

from opsdrill.errors import FaultNotEffective
from opsdrill.faults.base import CONTROL, Fault, register
from opsdrill.targets.base import Target

__all__ = ["ServicePause"]


@register
class ServicePause(Fault):
    """Every process of `service` frozen: alive, holding its port, answering nothing."""

    kind = "service_pause"

    needs = CONTROL  # a backend whose services cannot freeze says so at inject
    blast_radius = "every request to the paused service hangs until it is thawed"
    undo_summary = "unpause the service (its processes resume where they stopped)"

    def __init__(self, target: Target, *, service: str = "api") -> None:
        super().__init__(target, service=service)

    def _inject(self) -> None:
        svc = self.target.service(self.params["service"])
        if not svc.is_running():
            raise FaultNotEffective(f"{svc.name} is not running, so it cannot be paused")
        self.save_undo(service=svc.name)
        svc.pause()
        if not svc.paused():
            raise FaultNotEffective(f"{svc.name} was paused but does not say it is")

    def _revert(self) -> None:
        if "service" not in self.entry.undo:
            return  # never paused
        svc = self.target.service(self.entry.undo["service"])
        if svc.is_running():
            svc.unpause()
