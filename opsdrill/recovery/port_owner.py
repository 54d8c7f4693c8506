"""Runbook §5.2.1 "is the port taken": which process listens on it, read from /proc.

The socket's inode comes from /proc/net/tcp{,6} (LISTEN rows only), and the process from the
`socket:[inode]` links in /proc/<pid>/fd — a pid found this way, never a name matched.
`listeners` reads them where the port lives (`Target.exec` in `Target.socket_service`: this
machine, the container holding the app's network namespace, a host), by a script in the
app's Python.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

from opsdrill.errors import ServiceError
from opsdrill.targets.base import Target

__all__ = [
    "LISTENERS_SCRIPT",
    "PORTS_OF_SCRIPT",
    "listeners",
    "listening_inodes",
    "listening_pids",
    "ports_of",
    "process_line",
]

LISTEN = "0A"

#: argv: port. Prints [[pid, start ticks, command], ...] of the processes listening on it.
LISTENERS_SCRIPT = r"""
import json, os, sys
port, wanted = int(sys.argv[1]), set()
for table in ("/proc/net/tcp", "/proc/net/tcp6"):
    try:
        rows = open(table).read().splitlines()[1:]
    except OSError:
        continue
    for cols in (r.split() for r in rows):
        if cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port:
            wanted.add(f"socket:[{cols[9]}]")
found = []
for pid in (p for p in os.listdir("/proc") if p.isdigit() and wanted):
    try:
        if any(os.readlink(f"/proc/{pid}/fd/{fd}") in wanted
               for fd in os.listdir(f"/proc/{pid}/fd")):
            stat = open(f"/proc/{pid}/stat").read()
            cmd = open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ")
            found.append([int(pid), int(stat[stat.rindex(")") + 2:].split()[19]),
                          cmd.decode(errors="replace").strip()[:120]])
    except OSError:
        continue
print(json.dumps(sorted(found)))
"""

#: argv: pid. Prints the ports the process listens on (TCP, IPv4 or IPv6), space-separated.
PORTS_OF_SCRIPT = r"""
import os, sys
fds = f"/proc/{sys.argv[1]}/fd"
mine = set()
for fd in os.listdir(fds):
    try:
        mine.add(os.readlink(f"{fds}/{fd}"))
    except OSError:
        pass
ports = set()
for table in ("/proc/net/tcp", "/proc/net/tcp6"):
    try:
        rows = open(table).read().splitlines()[1:]
    except OSError:
        continue
    for cols in (r.split() for r in rows):
        if cols[3] == "0A" and f"socket:[{cols[9]}]" in mine:
            ports.add(int(cols[1].rsplit(":", 1)[1], 16))
print(" ".join(str(p) for p in sorted(ports)))
"""


def ports_of(target: Target, service: str, pid: int) -> list[int]:
    """The ports process `pid` listens on, read where `service` runs (as its user, who may
    read its /proc/PID/fd); empty when it is gone or unreadable."""
    done = target.exec(service, [target.python, "-c", PORTS_OF_SCRIPT, str(pid)], timeout=30)
    words = done.stdout.split() if done.ok else []
    return [int(w) for w in words if w.isdigit()]


def listeners(target: Target, port: int) -> list[tuple[int, int, str]]:
    """(pid, start ticks, command) of each process listening on `port` where the app's
    sockets live (`Target.socket_service`), pids as seen there."""
    where = target.socket_service("api")
    done = target.exec(where, [target.python, "-c", LISTENERS_SCRIPT, str(port)], timeout=30)
    try:
        return [(int(p), int(t), str(c)) for p, t, c in json.loads(done.stdout)]
    except ValueError:
        raise ServiceError(
            f"§5.2.1 could not list who listens on port {port} where {where} runs: "
            f"{done.output(300)}"
        ) from None


def listening_inodes(port: int) -> set[str]:
    """Inodes of sockets listening on `port` (any address, IPv4 or IPv6)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError):
            for line in Path(table).read_text().splitlines()[1:]:
                cols = line.split()
                local, state, inode = cols[1], cols[3], cols[9]
                if state == LISTEN and int(local.rsplit(":", 1)[1], 16) == port:
                    found.add(inode)
    return found


def listening_pids(port: int) -> list[int]:
    """Pids holding a listening socket on `port`."""
    wanted = {f"socket:[{inode}]" for inode in listening_inodes(port)}
    pids = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or not wanted:
            continue
        with contextlib.suppress(OSError):
            for fd in (entry / "fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) in wanted:
                        pids.add(int(entry.name))
                        break
    return sorted(pids)


def process_line(pid: int) -> str:
    """The command line of `pid`, for the diagnosis message."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "(gone)"
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()[:120]
