"""Runbook §5.2.4: the disk is full. Diagnose what takes the space, delete what is old.

Diagnose: filesystem usage (df), the biggest directories and files (du). Fix, as the runbook
orders it: logs older than 30 days (rotated logs older than 7), models older than 90 days, old
temp files; then confirm free space. `VACUUM FULL` frees space only on the database's own
filesystem, which is not the data filesystem here, so it is reported and not run.
Every step is a shell command where the app runs (`find`, `stat -f`, `rm`), through whatever
runs it there (`Target.exec`: this machine, a container, a host over ssh), as an operator would
type it. Deviation from the runbook, on purpose: the newest model directory is never deleted,
however old, because the app would have nothing left to forecast with.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from opsdrill.errors import ServiceError
from opsdrill.targets.model import ExecResult

__all__ = ["CleanupReport", "Entry", "Run", "biggest_directories", "clean_up", "listing", "usage"]

#: runs a command where the app runs (e.g. `lambda argv: target.exec("api", argv)`)
Run = Callable[[Sequence[str]], ExecResult]

DAY = 86400.0
LOG_DAYS, ROTATED_LOG_DAYS, MODEL_DAYS, TEMP_DAYS = 30, 7, 90, 1
ROTATED = re.compile(r"\.log\.\d+(\.gz)?$|\.log\.gz$|\.log-\d{8}(\.gz)?$")
#: one line per path: type, allocated bytes (512-byte blocks), mtime, path
FIND_FORMAT = r"%y\t%b\t%T@\t%p\n"


@dataclass(frozen=True)
class Entry:
    """One path under the data directory, as `find -printf` reports it."""

    kind: str  # "f" file, "d" directory, ...
    allocated: int  # bytes the filesystem gave it (blocks, not length)
    mtime: float
    path: PurePosixPath


@dataclass
class CleanupReport:
    actions: list[str] = field(default_factory=list)
    freed_bytes: int = 0
    deleted: list[PurePosixPath] = field(default_factory=list)


def _ok(done: ExecResult, what: str) -> str:
    if not done.ok:
        raise ServiceError(f"§5.2.4 {what} failed where the app runs: {done.output(300)}")
    return done.stdout


def usage(run: Run, path: PurePosixPath | str) -> tuple[int, int]:
    """(used, size) bytes of the filesystem holding `path`, as df counts them."""
    out = _ok(run(["stat", "-f", "-c", "%b %f %S", str(path)]), f"stat -f {path}")
    blocks, free, block_size = (int(x) for x in out.split())
    return (blocks - free) * block_size, blocks * block_size


def listing(run: Run, *roots: PurePosixPath | str) -> list[Entry]:
    """Everything under each root that exists (find), with allocated size and mtime."""
    script = f'for d; do [ -e "$d" ] && find "$d" -mindepth 1 -printf \'{FIND_FORMAT}\'; done; true'
    out = _ok(run(["sh", "-c", script, "sh", *map(str, roots)]), "find")
    entries = []
    for line in out.splitlines():
        kind, blocks, mtime, path = line.split("\t", 3)
        entries.append(Entry(kind, int(blocks) * 512, float(mtime), PurePosixPath(path)))
    return entries


def biggest_directories(run: Run, home: PurePosixPath) -> list[tuple[int, str]]:
    """(bytes, name) of NF_HOME's directories, biggest first (du -sk)."""
    done = run(["sh", "-c", 'cd "$0" && du -sk -- */ 2>/dev/null; true', str(home)])
    found = []
    for line in _ok(done, "du").splitlines():
        size, _, name = line.partition("\t")
        found.append((int(size) * 1024, name.rstrip("/")))
    return sorted(found, reverse=True)


def _human(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


def _under(path: PurePosixPath, top: PurePosixPath) -> bool:
    return path == top or top in path.parents


def _size(entry: Entry, entries: list[Entry]) -> int:
    if entry.kind != "d":
        return entry.allocated
    return sum(e.allocated for e in entries if e.kind == "f" and _under(e.path, entry.path))


def _candidates(home: PurePosixPath, entries: list[Entry], now: float) -> list[tuple[Entry, str]]:
    def older(entry: Entry, days: float) -> bool:
        return now - entry.mtime > days * DAY

    files = [e for e in entries if e.kind == "f"]
    out: list[tuple[Entry, str]] = []
    for log in sorted((e for e in files if _under(e.path, home / "logs")), key=lambda e: e.path):
        if ROTATED.search(log.path.name) and older(log, ROTATED_LOG_DAYS):
            out.append((log, f"rotated log older than {ROTATED_LOG_DAYS} days"))
        elif log.path.suffix == ".log" and older(log, LOG_DAYS):
            out.append((log, f"log older than {LOG_DAYS} days"))
    models = [
        e
        for e in entries
        if e.kind == "d" and e.path.parent == home / "models" and e.path.name != "tmp"
    ]
    for model in sorted(models, key=lambda e: e.mtime)[:-1]:  # never the newest
        if older(model, MODEL_DAYS):
            out.append((model, f"model older than {MODEL_DAYS} days"))
    temps = [e for e in files if e.path.suffix == ".tmp" or _under(e.path, home / "tmp")]
    out += [(t, f"temp file older than {TEMP_DAYS} day") for t in temps if older(t, TEMP_DAYS)]
    return out


def clean_up(
    run: Run,
    home: PurePosixPath | str,
    *,
    data_dir: PurePosixPath | str | None = None,
    now: float | None = None,
) -> CleanupReport:
    """Diagnose and clean NF_HOME (`home`) where the app runs; df reads the filesystem of
    `data_dir` (the one that filled: NF_HOME itself, or its models volume). Says what it did."""
    home = PurePosixPath(home)
    disk = PurePosixPath(data_dir) if data_dir is not None else home
    report = CleanupReport()
    used, size = usage(run, disk)
    report.actions.append(f"§5.2.4 diagnose: {disk} filesystem {_human(used)} of "
                          f"{_human(size)} used ({100 * used / max(size, 1):.0f} %)")  # fmt: skip
    # where §5.2.4 deletes: logs, models, temp files (a venv under NF_HOME is not walked)
    entries = listing(run, *(home / d for d in ("logs", "models", "tmp")))
    if now is None:
        now = float(_ok(run(["date", "+%s"]), "date"))  # the clock where the files are
    dirs = biggest_directories(run, home)
    report.actions.append("§5.2.4 diagnose: biggest directories: "
                          + ", ".join(f"{n}/ {_human(s)}" for s, n in dirs[:5]))  # fmt: skip
    biggest = sorted((e for e in entries if e.kind == "f"), key=lambda e: -e.allocated)[:5]
    report.actions.append("§5.2.4 diagnose: biggest files: " + ", ".join(
        f"{e.path.relative_to(home)} {_human(e.allocated)}" for e in biggest))  # fmt: skip
    for entry, why in _candidates(home, entries, now):
        size_of = _size(entry, entries)
        _ok(run(["rm", "-rf", "--", str(entry.path)]), f"rm {entry.path}")
        report.freed_bytes += size_of
        report.deleted.append(entry.path)
        report.actions.append(f"§5.2.4: deleted {entry.path} ({_human(size_of)}): {why}")
    report.actions.append("§5.2.4: VACUUM FULL not run: the database is not on this filesystem")
    used, size = usage(run, disk)
    report.actions.append(f"§5.2.4 confirm: freed {_human(report.freed_bytes)}; now "
                          f"{_human(used)} of {_human(size)} used, "
                          f"{_human(size - used)} free")  # fmt: skip
    return report
