"""Runbook §5.2.1 (the service does not start): the config corrected, the port freed.

Each builder returns a `Procedure` (runbook id, title, steps) over the Target interface; a
drill names one as its `recover`, and its steps are timed on the drill's timeline.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from opsdrill.drill.procedure import Procedure, procedure
from opsdrill.recovery.port_owner import listeners
from opsdrill.recovery.service_restart import restart_service
from opsdrill.targets.base import Target
from opsdrill.targets.model import ExecResult
from opsdrill.targets.service_process import ServiceProcess

__all__ = ["correct_config", "free_port"]


def correct_config(
    target: Target,
    check: Callable[[], ExecResult],
    broken: PurePosixPath | str,
    keep: Path,
) -> Procedure:
    """§5.2.1: --check-config names the file; it is moved aside (kept here, on the machine
    running opsdrill, with the incident), checked, restarted."""

    def diagnose() -> str:
        done = check()
        return f"--check-config: {done.stderr.strip() or done.stdout.strip()}"

    def move_aside() -> str:
        files = target.files("api")
        keep.parent.mkdir(parents=True, exist_ok=True)
        keep.write_text(files.read_text(broken))
        files.remove(broken)
        done = check()
        return f"broken file moved to {keep}; --check-config now: " + (
            done.stdout.strip() or done.stderr.strip()
        )

    return procedure(
        "5.2.1",
        "correct the config, restart",
        ("diagnose: --check-config", diagnose),
        ("correct the config (move the broken file aside)", move_aside),
        ("restart (§5.3.1)", lambda: restart_service(target, polls=120, interval=0.5)),
    )


def free_port(target: Target, port: int) -> Procedure:
    """§5.2.1 "is the port taken": the holder found by socket inode where the app binds its
    port, stopped by pid there (SIGTERM, then SIGKILL after 5 s; start time checked)."""
    where = target.socket_service("api")

    def diagnose() -> list[str]:
        return [f"port {port} held by pid {p}: {cmd}" for p, _, cmd in listeners(target, port)]

    def stop_holders() -> list[str]:
        actions = []
        for pid, ticks, _ in listeners(target, port):
            holder = ServiceProcess(target, where, pid, ticks)
            if holder.signal(signal.SIGTERM) and not holder.wait_gone(5.0):
                holder.kill()
            actions.append(f"stopped pid {pid} (by pid, start time checked)")
        return actions

    return procedure(
        "5.2.1",
        "free the port, restart",
        ("diagnose: who listens on the port (/proc inode)", diagnose),
        ("stop the holder by pid", stop_holders),
        ("restart (§5.3.1)", lambda: restart_service(target, polls=120, interval=0.5)),
    )
