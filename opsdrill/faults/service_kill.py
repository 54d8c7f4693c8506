"""Kill a service's main process (by pid, with a chosen signal); revert starts it again.

`DbDown` is runbook §5.2.2's first case (PostgreSQL is not running); `AppCrash` is §5.2.1 /
§5.3.1 (the service died). Both are real signals to real pids.
"""

from __future__ import annotations

import signal
from typing import ClassVar

from opsdrill.errors import FaultNotEffective
from opsdrill.faults.base import CONTROL, Fault, register
from opsdrill.targets.base import Target

__all__ = ["AppCrash", "DbDown", "ServiceKill"]


class ServiceKill(Fault):
    service: ClassVar[str]

    def __init__(self, target: Target, *, sig: str = "SIGKILL", stop: bool = False) -> None:
        super().__init__(target, sig=sig, stop=stop)

    def _inject(self) -> None:
        svc = self.target.service(self.service)
        pid = svc.pid()
        if pid is None:
            raise FaultNotEffective(f"{self.service} is not running, so it cannot be killed")
        self.save_undo(pid=pid)
        if self.params["stop"]:
            svc.stop()
        else:
            svc.kill(signal.Signals[self.params["sig"]])

    def _revert(self) -> None:
        svc = self.target.service(self.service)
        if not svc.is_running():
            svc.start(timeout=120)


@register
class DbDown(ServiceKill):
    """PostgreSQL's postmaster killed (or stopped): every query fails until it is started."""

    kind = "db_down"

    needs = CONTROL
    service = "db"
    blast_radius = "every request that needs the database; training runs in flight"
    undo_summary = "start PostgreSQL again (stale postmaster.pid removed)"


@register
class AppCrash(ServiceKill):
    """The API process killed: nothing answers on its port until it is started again."""

    kind = "app_crash"

    needs = CONTROL
    service = "api"
    blast_radius = "the whole API; runs in flight lose their executor"
    undo_summary = "start the app again; it recovers orphaned runs at start-up"
