"""Runbook §5.2.5 "CPU": find the processes eating the CPU (`top`) and kill them by pid.

`top` is two readings of utime+stime from /proc one interval apart. On a shared machine the
search is scoped (`within`: processes whose stdout is a file under that directory — the
stack's own host, in the embedded case) and never touches the stack's services, their
children or this process: an offender is found by what it does, then killed by pid with its
start time checked, never by name.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from opsdrill.processes import ProcessRef
from opsdrill.recovery.port_owner import process_line

__all__ = ["CpuUser", "kill_offenders", "offenders", "top_cpu"]

TICKS = os.sysconf("SC_CLK_TCK")
#: a process outside the stack's services using more than this share of a core is an
#: offender: low, because on a crowded machine a busy loop may get only a sliver of a core
OFFENDER_SHARE = 0.05


@dataclass(frozen=True)
class CpuUser:
    pid: int
    ticks: int  # start time, to kill the same process that was measured
    cpu: float  # share of one core over the sample
    command: str


def _stat(pid: int) -> tuple[int, int, int] | None:
    """(ppid, utime+stime, start ticks) from /proc/<pid>/stat."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    return int(fields[1]), int(fields[11]) + int(fields[12]), int(fields[19])


def _in_scope(pid: int, within: Path | None) -> bool:
    if within is None:
        return True
    with contextlib.suppress(OSError):
        return Path(os.readlink(f"/proc/{pid}/fd/1")).is_relative_to(within)
    return False


def _descends_from(pid: int, roots: set[int]) -> bool:
    seen = 0
    while pid > 1 and seen < 64:
        if pid in roots:
            return True
        stat = _stat(pid)
        if stat is None:
            return False
        pid, seen = stat[0], seen + 1
    return False


def top_cpu(within: Path | None, spare: set[int], interval: float = 1.0) -> list[CpuUser]:
    """Processes in scope by CPU share over `interval`, busiest first; `spare` (the stack's
    services) and their descendants (training workers) left out, and this process itself."""
    pids = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]
    within = within.resolve() if within is not None else None
    first = {pid: s for pid in pids if _in_scope(pid, within) and (s := _stat(pid)) is not None}
    time.sleep(interval)  # top's sampling interval: a measurement, not a wait for a condition
    found = []
    for pid, (_, cpu0, ticks) in first.items():
        now = _stat(pid)
        if now is None or now[2] != ticks or pid == os.getpid() or _descends_from(pid, spare):
            continue
        share = (now[1] - cpu0) / TICKS / interval
        found.append(CpuUser(pid, ticks, round(share, 2), process_line(pid)))
    return sorted(found, key=lambda u: u.cpu, reverse=True)


def offenders(
    within: Path | None, spare: set[int], threshold: float = OFFENDER_SHARE
) -> list[CpuUser]:
    """What `top` would point at: processes in scope above `threshold` of a core."""
    return [u for u in top_cpu(within, spare) if u.cpu >= threshold]


def kill_offenders(users: list[CpuUser], threshold: float = OFFENDER_SHARE) -> list[str]:
    """SIGKILL every process above `threshold` of a core, by pid and start time."""
    actions = []
    for user in (u for u in users if u.cpu >= threshold):
        ref = ProcessRef(user.pid, user.ticks)
        if ref.signal(signal.SIGKILL):
            ref.wait_gone(5.0)
            actions.append(f"killed pid {user.pid} ({user.cpu:.0%} of a core): {user.command}")
    return actions or [f"no process in scope above {threshold:.0%} of a core"]
