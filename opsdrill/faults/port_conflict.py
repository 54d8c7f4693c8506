"""Another process holds the app's port when it starts: runbook §5.2.1.

The app is stopped, a helper process binds and listens on its port (a real socket) where the
app runs (`Target.exec`), and the app is started: uvicorn cannot bind, the start fails with a
ServiceError naming the cause, and the app stays down. The helper runs detached so it outlives
a killed runner; its pid and start time are journaled and it is stopped by pid (never by
name; `ServiceProcess`), and it exits by itself after `max_seconds` even if nobody reverts it.
"""

from __future__ import annotations

from opsdrill.errors import FaultNotEffective
from opsdrill.faults.base import CONTROL, Fault, register
from opsdrill.polling import poll
from opsdrill.targets.base import Target
from opsdrill.targets.service_process import ServiceProcess

__all__ = ["HOLDER_CODE", "PORT_TAKEN_CODE", "PortConflict"]

HOLDER_CODE = """
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(8)
print("listening", flush=True)
time.sleep(float(sys.argv[2]))
"""
#: exits 0 when something listens on 127.0.0.1:argv[1] (run where the app runs)
PORT_TAKEN_CODE = """
import socket, sys
s = socket.socket(); s.settimeout(0.5)
sys.exit(0 if s.connect_ex(("127.0.0.1", int(sys.argv[1]))) == 0 else 1)
"""
SERVICE = "api"


@register
class PortConflict(Fault):
    """A stranger listens on the app's port; the app cannot start."""

    kind = "port_conflict"

    needs = CONTROL | {"exec"}
    blast_radius = "the whole API: it is stopped and cannot start again while the port is held"
    undo_summary = "stop the port holder by its journaled pid, then start the app"

    def __init__(self, target: Target, *, max_seconds: float = 300.0) -> None:
        super().__init__(target, max_seconds=max_seconds)
        self.start_error: str | None = None

    @property
    def port(self) -> int:
        """The port the app binds where it runs."""
        return self.target.listen_port(SERVICE)

    @property
    def where(self) -> str:
        """The service whose network namespace holds the app's port (and runs while the app
        is stopped): the app's own, or a pod's namespace holder."""
        return self.target.socket_service(SERVICE)

    def port_taken(self, port: int) -> bool:
        """True when something listens on the port, as seen where the app binds it."""
        argv = [self.target.python, "-c", PORT_TAKEN_CODE, str(port)]
        return self.target.exec(self.where, argv).ok

    def _inject(self) -> None:
        api = self.target.service(SERVICE)
        port = self.port
        api.stop()
        argv = [self.target.python, "-c", HOLDER_CODE, str(port), str(self.params["max_seconds"])]
        holder = ServiceProcess.start(self.target, self.where, argv)
        self.save_undo(holder=holder.record(), port=port)

        def bound() -> bool | None:
            return self.port_taken(port) or (None if holder.alive() else False)

        if not poll(bound, 10, interval=0.05):
            raise FaultNotEffective(f"the helper (pid {holder.pid}) never bound port {port}")
        self.start_error = self.require_refused_start(SERVICE, f"port {port} was held")

    def holder(self) -> ServiceProcess | None:
        """The port holder, from the journal."""
        undo = self.entry.undo
        if "holder" in undo:
            return ServiceProcess.of(self.target, undo["holder"])
        if "holder_pid" in undo:  # entries written before the holder ran through the seam
            return ServiceProcess.of(self.target, [undo["holder_pid"], undo["holder_ticks"]])
        return None

    def _revert(self) -> None:
        if (holder := self.holder()) is not None and holder.kill():
            holder.wait_gone(5.0)
        api = self.target.service(SERVICE)
        if not api.is_running():
            api.start(timeout=120)
