"""Runbook §5.2.5 "CPU": find the processes eating the CPU (`top`) and kill them by pid.

`top` is two readings of utime+stime from /proc one interval apart, taken where the app runs
(`Target.exec`: this machine, a container, a host over ssh) by a short script in the app's own
Python. The search is scoped and never touches the stack's services, their children or the
sampling script itself: on this machine shared with other work, to processes whose stdout is a
file under the stack's directory (`within`); elsewhere, to processes of the user the app runs
as, so a busy process of anyone else is never a candidate. An offender is found by what it
does, then killed by pid with its start time checked where it runs, never by name.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from opsdrill.errors import ServiceError
from opsdrill.targets.base import Target
from opsdrill.targets.service_process import ServiceProcess

__all__ = ["SERVICE", "CpuUser", "kill_offenders", "offenders", "top_cpu"]

#: a process outside the stack's services using more than this share of a core is an
#: offender: low, because on a crowded machine a busy loop may get only a sliver of a core
OFFENDER_SHARE = 0.05
#: where `top` runs: beside the app, whose requests the hogs slow down
SERVICE = "api"

#: argv: interval, scope directory (or ""). Prints one JSON object: this script's pid and uid,
#: and [pid, ppid, uid, start ticks, share of a core, in scope, command] per process.
TOP_SCRIPT = r"""
import json, os, sys, time
interval, within = float(sys.argv[1]), sys.argv[2]
tick = os.sysconf("SC_CLK_TCK")
def stat(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            raw = f.read()
        uid = os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2:].split()
    return int(fields[1]), int(fields[11]) + int(fields[12]), int(fields[19]), uid
def scoped(pid):
    if not within:
        return True
    try:
        return os.path.realpath(os.readlink(f"/proc/{pid}/fd/1")).startswith(within + "/")
    except OSError:
        return False
def cmd(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()[:120]
    except OSError:
        return "(gone)"
pids = [int(p) for p in os.listdir("/proc") if p.isdigit()]
first, t0 = {p: s for p in pids if (s := stat(p))}, time.monotonic()
time.sleep(interval)
elapsed, out = time.monotonic() - t0, []
for pid, (ppid, cpu0, ticks, uid) in first.items():
    now = stat(pid)
    if now is None or now[2] != ticks:
        continue
    share = round((now[1] - cpu0) / tick / elapsed, 2)
    out.append([pid, now[0], uid, ticks, share, scoped(pid), cmd(pid)])
print(json.dumps({"self": os.getpid(), "uid": os.getuid(), "procs": out}))
"""


@dataclass(frozen=True)
class CpuUser:
    pid: int  # as seen where the app runs
    ticks: int  # start time, to kill the same process that was measured
    cpu: float  # share of one core over the sample
    command: str


def _descends(pid: int, parents: dict[int, int], roots: set[int]) -> bool:
    seen = 0
    while pid > 1 and seen < 64:
        if pid in roots:
            return True
        pid, seen = parents.get(pid, 0), seen + 1
    return pid in roots


def top_cpu(target: Target, within: Path | None = None, interval: float = 1.0) -> list[CpuUser]:
    """Processes in scope where the app runs, by CPU share over `interval`, busiest first; the
    stack's services (`Target.stack_pids`) and their descendants (training workers) left out,
    and the sampling script itself."""
    scope = str(within.resolve()) if within is not None else ""
    argv = [target.python, "-c", TOP_SCRIPT, str(interval), scope]
    done = target.exec(SERVICE, argv, timeout=30 + interval)
    try:
        sample = json.loads(done.stdout)
    except ValueError:
        raise ServiceError(f"§5.2.5 top failed where the app runs: {done.output(300)}") from None
    parents = {p[0]: p[1] for p in sample["procs"]}
    spare = target.stack_pids(SERVICE) | {sample["self"]}
    found = [
        CpuUser(pid, ticks, share, command)
        for pid, _, uid, ticks, share, in_scope, command in sample["procs"]
        if in_scope
        and (within is not None or uid == sample["uid"])
        and not _descends(pid, parents, spare)
    ]
    return sorted(found, key=lambda u: u.cpu, reverse=True)


def offenders(
    target: Target, within: Path | None = None, threshold: float = OFFENDER_SHARE
) -> list[CpuUser]:
    """What `top` would point at: processes in scope above `threshold` of a core."""
    return [u for u in top_cpu(target, within) if u.cpu >= threshold]


def kill_offenders(
    target: Target, users: list[CpuUser], threshold: float = OFFENDER_SHARE
) -> list[str]:
    """SIGKILL every process above `threshold` of a core, by pid and start time."""
    actions = []
    for user in (u for u in users if u.cpu >= threshold):
        ref = ServiceProcess(target, SERVICE, user.pid, user.ticks)
        if ref.kill():
            ref.wait_gone(5.0)
            actions.append(f"killed pid {user.pid} ({user.cpu:.0%} of a core): {user.command}")
    return actions or [f"no process in scope above {threshold:.0%} of a core"]
