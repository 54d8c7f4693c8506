"""Fill the stack's data filesystem with a ballast file: runbook §5.2.4 (disk full).

Real `ENOSPC`: the ballast takes every free block of the size-limited ext4 filesystem that
holds NF_HOME (models and logs), so the next write there fails as it would on a full disk.
The stack must have a data filesystem (`opsdrill up --data-fs-size 64m`, or one a drill put in
place with `Target.ensure_data_fs`, undone by `DataFsInPlace` below); on the machine's own disk
this fault refuses, since filling it would break everything else.
The ballast is a forgotten temp file (`home/tmp/*.tmp`, mtime ten days ago), so the §5.2.4
clean-up finds it; the revert deletes it by its journaled path whatever the clean-up did.
"""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path

from opsdrill.errors import FaultNotEffective
from opsdrill.faults.base import Fault, register
from opsdrill.targets.local import LocalTarget

__all__ = ["DiskFull", "probe_write"]

CHUNK = 1024 * 1024
BALLAST_AGE_DAYS = 10


def probe_write(directory: Path) -> OSError | None:
    """Write, fsync and delete a small file; the error it met (e.g. ENOSPC), or None."""
    path = directory / f".opsdrill_write_probe_{os.getpid()}"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, b"x" * 8192)
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        return exc
    finally:
        path.unlink(missing_ok=True)
    return None


def _fill(path: Path) -> int:
    """Allocate every free block into `path`: fallocate in one go, then top up by writes."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        st = os.fstatvfs(fd)
        free = st.f_bavail * st.f_frsize
        size = 0
        while free > 0:
            try:
                os.posix_fallocate(fd, size, free)
                size += free
                break
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                free -= max(CHUNK, free // 16)  # metadata takes a little: retry smaller
        os.lseek(fd, 0, os.SEEK_END)
        block = b"\0" * 4096
        while True:  # the last blocks fallocate could not take
            try:
                os.write(fd, block)
                os.fsync(fd)
            except OSError as exc:
                if exc.errno == errno.ENOSPC:
                    break
                raise
        return os.fstat(fd).st_size
    finally:
        os.close(fd)


@register
class DiskFull(Fault):
    """The filesystem holding models and logs is full: every write there fails with ENOSPC."""

    kind = "disk_full"
    blast_radius = "writes to models and logs: training runs, app log, /health storage check"
    undo_summary = "delete the ballast file by its journaled path"

    def __init__(self, target: LocalTarget) -> None:
        super().__init__(target)

    def _inject(self) -> None:
        fs = self.target.data_fs
        if fs is None or not fs.mounted():
            raise FaultNotEffective(
                f"the stack in {self.target.state_dir} has no size-limited data filesystem, so "
                "filling it would fill this machine's disk; start the stack with "
                "'opsdrill up --data-fs-size 64m' to run this fault"
            )
        ballast = self.target.home / "tmp" / f"opsdrill-ballast-{self.entry.fault_id}.tmp"
        self.save_undo(ballast=str(ballast))
        ballast.parent.mkdir(exist_ok=True)
        size = _fill(ballast)
        old = time.time() - BALLAST_AGE_DAYS * 86400
        os.utime(ballast, (old, old))
        self.save_undo(ballast=str(ballast), ballast_bytes=size)
        error = probe_write(self.target.home)
        if error is None or error.errno != errno.ENOSPC:
            raise FaultNotEffective(
                f"{ballast} holds {size} bytes but a write in {self.target.home} still gives "
                f"{error!r}, not ENOSPC"
            )

    def _revert(self) -> None:
        if path := self.entry.undo.get("ballast"):
            Path(path).unlink(missing_ok=True)


@register
class DataFsInPlace(Fault):
    """Not a fault: the stack's home moved onto a size-limited filesystem for the disk drill,
    journaled like one so that a killed run's rollback moves it back
    (`Target.ensure_data_fs`)."""

    kind = "data_fs_in_place"
    blast_radius = "the app restarts onto a size-limited copy of its home, and back"
    undo_summary = "stop the app, copy its home back off the image, remove the image, start it"

    def __init__(self, target: LocalTarget, *, size: str) -> None:
        super().__init__(target, size=size)

    def _inject(self) -> None:
        self.target.install_data_fs(self.params["size"])

    def _revert(self) -> None:
        self.target.remove_data_fs()
