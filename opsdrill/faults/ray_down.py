"""A Ray node SIGKILLed by pid: the worker node's raylet, or the head's GCS server.

A node is the `ray start --block` process the stack tracks plus the Ray processes it spawned;
the node itself is its raylet (a worker node) or its GCS server (the head). Killing that
process by pid is what a crashed or OOM-killed node looks like; `ray start --block` then
takes the node's other processes down. Revert starts the node again by its record.
"""

from __future__ import annotations

from typing import ClassVar

from opsdrill.errors import FaultNotEffective
from opsdrill.faults.base import CONTROL, Fault, register
from opsdrill.recovery.ray_nodes import restart_ray_cluster, restart_ray_node

__all__ = ["RayHeadDown", "RayWorkerDown"]


class RayNodeKill(Fault):
    service: ClassVar[str]
    process: ClassVar[str]  # the node's own process among the children of `ray start`

    def _node_pid(self) -> int:
        node = self.target.service(self.service).pid()
        if node is None:
            raise FaultNotEffective(f"{self.service} is not running, so it cannot be killed")
        ps = self.target.exec(self.service, ["ps", "-o", "pid=,comm=", "--ppid", str(node)])
        for line in ps.stdout.splitlines():
            pid, _, comm = line.strip().partition(" ")
            if comm.strip().startswith(self.process) and pid.isdigit():
                return int(pid)
        raise FaultNotEffective(f"{self.service} (pid {node}) has no {self.process} process")

    def _inject(self) -> None:
        pid = self._node_pid()
        self.save_undo(pid=pid, group=self.target.service(self.service).pid())
        killed = self.target.exec(self.service, ["kill", "-s", "KILL", str(pid)])
        if not killed.ok:
            raise FaultNotEffective(f"kill -KILL {pid} ({self.process}): {killed.output()}")

    def _revert(self) -> None:
        if not self.target.service(self.service).is_running():
            restart_ray_node(self.target, self.service, self.entry.undo.get("group"))


@register
class RayWorkerDown(RayNodeKill):
    """The worker node's raylet killed: its tasks die with it; runs on it must end failed."""

    kind = "ray_worker_down"

    needs = CONTROL | {"exec"}
    service = "ray_worker"
    process = "raylet"
    blast_radius = "training runs executing on that Ray node"
    undo_summary = "start the worker node again (runbook 7.2.1: ray start --address=HEAD)"


@register
class RayHeadDown(RayNodeKill):
    """The head's GCS server killed: the cluster cannot take tasks; the API must stay up."""

    kind = "ray_head_down"

    needs = CONTROL | {"exec"}
    service = "ray_head"
    process = "gcs_server"
    blast_radius = "new training runs (refused while the head is down); forecasts unaffected"
    undo_summary = "start the head node again, then the worker node"

    def _revert(self) -> None:
        if not self.target.service(self.service).is_running():
            restart_ray_cluster(self.target, {self.service: self.entry.undo.get("group")})
