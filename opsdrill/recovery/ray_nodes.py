"""Starting a Ray node again after it died (runbook §5.3.1 for the head, §7.2.1 for a worker).

A node is the `ray start --block` process the stack records and the Ray processes it spawned,
all in that process's own process group. When the node's raylet or GCS server is killed,
`ray start --block` exits but some of its processes may stay (the dashboard agent does), and
a new head refuses to start while a worker's raylet still points at the old GCS port. So:
stop the worker node first when the head goes, SIGKILL what is left of a dead node's process
group (by its recorded pid, never by name), then start the node by its record.
"""

from __future__ import annotations

from opsdrill.targets.base import Target

__all__ = ["kill_leftovers", "restart_ray_cluster", "restart_ray_node"]


def kill_leftovers(target: Target, service: str, group: int | None) -> str:
    """SIGKILL what is left of a dead node's process group; what was done, for the record."""
    if group is None:
        return ""
    done = target.exec(service, ["kill", "-s", "KILL", "--", f"-{group}"])
    return f"; SIGKILLed what was left of process group {group}" if done.ok else ""


def restart_ray_node(target: Target, service: str, group: int | None = None) -> str:
    """Stop the node (SIGTERM to its `ray start --block`, or forget a dead one's record),
    kill the leftovers of the process group `group` (the node's old pid), start it again."""
    svc = target.service(service)
    svc.stop()
    leftovers = kill_leftovers(target, service, group)
    svc.start(timeout=180)
    return f"{service} started again (pid {svc.pid()}){leftovers}"


def restart_ray_cluster(target: Target, groups: dict[str, int | None]) -> list[str]:
    """The head, then the worker node: a worker does not rejoin a new head, and a head will
    not start while a worker's raylet still names its port. `groups`: the nodes' old pids."""
    worker = target.service("ray_worker")
    worker.stop()
    actions = [
        f"ray_worker stopped{kill_leftovers(target, 'ray_worker', groups.get('ray_worker'))}"
    ]
    actions.append(restart_ray_node(target, "ray_head", groups.get("ray_head")))
    actions.append(restart_ray_node(target, "ray_worker"))
    return actions
