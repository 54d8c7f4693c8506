"""Figures read from the target's host through testinfra, so they work locally and over ssh.

Only `host.run` and `host.file` are used: no local `os` calls, which would read the machine
running pytest instead of the one running the stack.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Any

__all__ = [
    "DiskUsage",
    "MemoryUsage",
    "NewestFile",
    "cpu_percent",
    "disk_usage",
    "memory_usage",
    "newest_file",
]


@dataclass(frozen=True)
class DiskUsage:
    path: str
    mount: str
    size_bytes: int
    used_bytes: int
    avail_bytes: int

    @property
    def percent(self) -> float:
        """Used share as df computes it: used / (used + available), root's reserve excluded."""
        usable = self.used_bytes + self.avail_bytes
        return 100.0 * self.used_bytes / usable if usable else 0.0


@dataclass(frozen=True)
class MemoryUsage:
    total_bytes: int
    available_bytes: int

    @property
    def percent(self) -> float:
        return 100.0 * (1 - self.available_bytes / self.total_bytes)


@dataclass(frozen=True)
class NewestFile:
    path: str
    mtime: float
    size_bytes: int
    now: float

    @property
    def age_seconds(self) -> float:
        return self.now - self.mtime


def _run(host: Any, command: str) -> str:
    result = host.run(command)
    if result.rc != 0:
        raise RuntimeError(f"`{command}` failed on the host (rc {result.rc}): "
                           f"{result.stderr.strip()}")  # fmt: skip
    return str(result.stdout)


def disk_usage(host: Any, paths: list[str]) -> list[DiskUsage]:
    """`df -P -B1` for each path (one command); missing paths raise with the path named."""
    out = _run(host, "df -P -B1 -- " + " ".join(shlex.quote(p) for p in paths))
    rows = [line.split() for line in out.splitlines()[1:] if line.strip()]
    return [
        DiskUsage(path, row[-1], int(row[1]), int(row[2]), int(row[3]))
        for path, row in zip(paths, rows, strict=True)
    ]


def memory_usage(host: Any) -> MemoryUsage:
    """From /proc/meminfo: MemAvailable is what the kernel can give without swapping."""
    fields = {}
    for line in host.file("/proc/meminfo").content_string.splitlines():
        name, _, rest = line.partition(":")
        fields[name] = int(rest.split()[0]) * 1024
    return MemoryUsage(fields["MemTotal"], fields["MemAvailable"])


def newest_file(host: Any, directory: str, pattern: str) -> NewestFile | None:
    """The file matching `pattern` in `directory` with the newest real mtime, or None."""
    cmd = (
        f"find {shlex.quote(directory)} -maxdepth 1 -type f -name {shlex.quote(pattern)} "
        "-printf '%T@ %s %p\\n'; echo now $(date +%s.%N)"
    )
    lines = _run(host, cmd).splitlines()
    now = float(lines[-1].split()[1])
    found = [line.split(" ", 2) for line in lines[:-1] if line.strip()]
    if not found:
        return None
    mtime, size, path = max(found, key=lambda f: float(f[0]))
    return NewestFile(path, float(mtime), int(size), now)


def cpu_percent(host: Any, window: float = 0.5) -> float:
    """Busy share of all CPUs over a `window`-second measurement on the host (/proc/stat)."""
    out = _run(host, f"head -1 /proc/stat; sleep {window}; head -1 /proc/stat").splitlines()
    first, second = ([int(v) for v in line.split()[1:]] for line in out[:2])
    delta = [b - a for a, b in zip(first, second, strict=True)]
    idle = delta[3] + (delta[4] if len(delta) > 4 else 0)  # idle + iowait
    total = sum(delta[:8])  # guest time is already counted in user
    return 100.0 * (1 - idle / total) if total else 0.0
