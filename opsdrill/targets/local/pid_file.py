"""The embedded app's pid file and sockets, left behind by a process that died or hung.

Runbook §5.3.1 kills what a graceful stop left "by the pid file": here only after checking
that the pid still names this home's app (its command line and working directory), never by
matching command lines (`pkill -f` would also kill every other process whose arguments mention
the app). `LocalTarget.clear_leftovers` uses it; a container's stop leaves nothing behind.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

from opsdrill.processes import ProcessRef

__all__ = ["APP_MODULE", "clear_leftovers", "leftover_pid", "stale_sockets"]

APP_MODULE = b"nf_auto_runner.app.main"


def leftover_pid(pid_file: Path, home: Path) -> int | None:
    """The pid in the pid file, if that process is alive and is this home's app."""
    try:
        pid = int(pid_file.read_text().split()[0])
    except (FileNotFoundError, ValueError, IndexError):
        return None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        cwd = os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return None  # gone: the pid file is stale
    return pid if APP_MODULE in cmdline and Path(cwd) == home else None


def stale_sockets(run_dir: Path) -> list[Path]:
    """Unix socket files in the run directory that no process listens on any more."""
    try:
        live = {line.split()[-1] for line in Path("/proc/net/unix").read_text().splitlines()[1:]}
    except OSError:
        return []
    return [p for p in run_dir.glob("*.sock") if p.is_socket() and str(p) not in live]


def clear_leftovers(pid_file: Path, home: Path) -> list[str]:
    """Kill the pid file's process if it is still this home's app, remove the pid file and
    stale sockets; the actions taken."""
    actions = []
    if (pid := leftover_pid(pid_file, home)) is not None:
        ref = ProcessRef.of(pid)
        if ref is not None and ref.signal(signal.SIGKILL):
            ref.wait_gone(10.0)
        actions.append(f"killed leftover pid {pid} from {pid_file}")
    if pid_file.exists():
        pid_file.unlink()
        actions.append(f"removed pid file {pid_file}")
    for sock in stale_sockets(pid_file.parent):
        sock.unlink(missing_ok=True)
        actions.append(f"removed stale socket {sock}")
    return actions
