"""Processes identified by pid *and* start time, so a recycled pid is never signalled.

The runbook's `pkill -9 -f nf_auto_runner` (§5.3.1) kills whatever matches a pattern; opsdrill
only ever signals a pid it started, after checking the kernel still reports the start time it
recorded then.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from opsdrill.polling import poll

__all__ = ["ProcessRef", "pid_alive", "spawn", "start_ticks", "stat_start_ticks"]


def stat_start_ticks(stat: str) -> int | None:
    """The start time in a /proc/PID/stat line (clock ticks since boot); None for a zombie
    or an unreadable line. Wherever the line was read: here, or where a service runs."""
    # comm (field 2) may hold spaces and parentheses: split after its closing parenthesis.
    fields = stat[stat.rfind(")") + 2 :].split()
    if len(fields) < 20 or fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot, or None if it is gone or a zombie."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    ticks = stat_start_ticks(raw)
    if ticks is None:
        _reap(pid)
    return ticks


def pid_alive(pid: int) -> bool:
    """True while the pid names a live (non-zombie) process."""
    return start_ticks(pid) is not None


def _reap(pid: int) -> None:
    """Collect a zombie child of ours so its pid is released."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


@dataclass(frozen=True)
class ProcessRef:
    """A process we started: its pid and the start time that proves it is still the same one."""

    pid: int
    ticks: int

    @classmethod
    def of(cls, pid: int) -> ProcessRef | None:
        ticks = start_ticks(pid)
        return None if ticks is None else cls(pid, ticks)

    def alive(self) -> bool:
        return start_ticks(self.pid) == self.ticks

    def signal(self, sig: int) -> bool:
        """Send `sig` if the process is still ours; False when it is already gone."""
        if not self.alive():
            return False
        try:
            os.kill(self.pid, sig)
        except ProcessLookupError:
            return False
        return True

    def wait_gone(self, timeout: float) -> bool:
        """Poll until the process has exited; True if it did within `timeout` seconds."""
        return poll(lambda: (not self.alive()) or None, timeout, interval=0.02) is not None

    def terminate(self, grace: float = 10.0) -> None:
        """SIGTERM, wait up to `grace` seconds, then SIGKILL what is left."""
        if self.signal(signal.SIGTERM) and not self.wait_gone(grace):
            self.signal(signal.SIGKILL)
            self.wait_gone(5.0)


def spawn(
    argv: Sequence[str],
    *,
    log: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    user: str | None = None,
) -> ProcessRef:
    """Start a daemon-like child in its own session, output appended to `log`.

    Its own session keeps a Ctrl-C in the terminal from reaching it: the stack outlives the
    command that started it, and is stopped only through its pid.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            user=user,
            group=_primary_group(user),
            extra_groups=[] if user else None,
            start_new_session=True,
            close_fds=True,
        )
    ticks = start_ticks(proc.pid)
    if ticks is None:  # exited at once: keep the pid so callers see it as not running
        return ProcessRef(proc.pid, -1)
    return ProcessRef(proc.pid, ticks)


def _primary_group(user: str | None) -> int | None:
    if user is None:
        return None
    return pwd.getpwnam(user).pw_gid
