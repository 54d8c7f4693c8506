"""Runbook §5.2.1 "is the port taken": which process listens on it, read from /proc.

The socket's inode comes from /proc/net/tcp{,6} (LISTEN rows only), and the process from the
`socket:[inode]` links in /proc/<pid>/fd — a pid found this way, never a name matched.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

__all__ = ["listening_inodes", "listening_pids", "process_line"]

LISTEN = "0A"


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
