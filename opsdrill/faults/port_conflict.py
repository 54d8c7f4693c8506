"""Another process holds the app's port when it starts: runbook §5.2.1.

The app is stopped, a helper process binds and listens on its port (a real socket), and the
app is started: uvicorn cannot bind, the start fails with a ServiceError naming the cause,
and the app stays down. The helper runs in its own session so it outlives a killed runner;
its pid and start time are journaled and it is stopped by pid (never by name), and it exits
by itself after `max_seconds` even if nobody reverts it.
"""

from __future__ import annotations

import socket
import sys
import time

from opsdrill.errors import FaultNotEffective
from opsdrill.faults.base import Fault, register
from opsdrill.processes import ProcessRef, spawn
from opsdrill.targets.local import LocalTarget

__all__ = ["HOLDER_CODE", "PortConflict"]

HOLDER_CODE = """
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(8)
print("listening", flush=True)
time.sleep(float(sys.argv[2]))
"""


def port_taken(port: int) -> bool:
    """True when something already listens on 127.0.0.1:port."""
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


@register
class PortConflict(Fault):
    """A stranger listens on the app's port; the app cannot start."""

    kind = "port_conflict"
    blast_radius = "the whole API: it is stopped and cannot start again while the port is held"
    undo_summary = "stop the port holder by its journaled pid, then start the app"

    def __init__(self, target: LocalTarget, *, max_seconds: float = 300.0) -> None:
        super().__init__(target, max_seconds=max_seconds)
        self.start_error: str | None = None

    @property
    def port(self) -> int:
        url = self.target.service("api").url or ""
        return int(url.rsplit(":", 1)[1])

    def _inject(self) -> None:
        api = self.target.service("api")
        port = self.port
        api.stop()
        holder = spawn(
            [sys.executable, "-c", HOLDER_CODE, str(port), str(self.params["max_seconds"])],
            log=self.target.state_dir / "logs" / "port_holder.log",
        )
        self.save_undo(holder_pid=holder.pid, holder_ticks=holder.ticks, port=port)
        deadline = time.monotonic() + 10
        while not port_taken(port):
            if not holder.alive() or time.monotonic() > deadline:
                raise FaultNotEffective(f"the helper (pid {holder.pid}) never bound port {port}")
            time.sleep(0.05)
        self.start_error = self.require_refused_start("api", f"port {port} was held")

    def _revert(self) -> None:
        undo = self.entry.undo
        if "holder_pid" in undo:
            ProcessRef(undo["holder_pid"], undo["holder_ticks"]).terminate(grace=5.0)
        api = self.target.service("api")
        if not api.is_running():
            api.start(timeout=120)
