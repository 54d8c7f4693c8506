"""Fill the app's data filesystem with a ballast file: runbook §5.2.4 (disk full).

Real `ENOSPC`: the ballast takes every free block of the size-limited filesystem that holds
the app's data directory (NF_HOME: models and logs), written where the app runs through the
target's file operations (`Target.files(...).fill`), so the next write there fails as it would
on a full disk. The data directory must be on a filesystem of its own, as
`Target.ensure_data_fs` puts it (or `opsdrill up --data-fs-size 64m`); a filesystem larger
than `max_mb` is taken for a real disk and refused, since filling it would break everything
else. The ballast is a forgotten temp file (`NF_HOME/tmp/*.tmp`, mtime ten days ago), so the
§5.2.4 clean-up finds it; the revert deletes it by its journaled path whatever the clean-up did.
"""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path, PurePosixPath

from opsdrill.errors import FaultNotEffective
from opsdrill.faults.base import Fault, register
from opsdrill.targets.base import Target

__all__ = ["DiskFull", "probe_write"]

MB = 1024 * 1024
BALLAST_AGE_DAYS = 10
SERVICE = "api"
PROBE = "x" * 8192


def probe_write(directory: Path) -> OSError | None:
    """Write, fsync and delete a small file on this machine; the error it met (e.g. ENOSPC)."""
    path = directory / f".opsdrill_write_probe_{os.getpid()}"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, PROBE.encode())
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        return exc
    finally:
        path.unlink(missing_ok=True)
    return None


@register
class DiskFull(Fault):
    """The filesystem holding models and logs is full: every write there fails with ENOSPC."""

    kind = "disk_full"
    blast_radius = "writes to models and logs: training runs, app log, /health storage check"
    undo_summary = "delete the ballast file by its journaled path"

    def __init__(self, target: Target, *, max_mb: int = 1024) -> None:
        super().__init__(target, max_mb=max_mb)

    def _home(self) -> PurePosixPath:
        home = self.target.endpoints.home
        if home is None:
            raise FaultNotEffective(f"target {self.target.name!r} names no data directory")
        return PurePosixPath(home)

    def _run(self, *argv: str) -> str:
        done = self.target.exec(SERVICE, argv, timeout=30)
        if not done.ok:
            raise FaultNotEffective(f"{' '.join(argv)} failed where the app runs: {done.output()}")
        return done.stdout

    def _check_size_limited(self, home: PurePosixPath) -> None:
        """Refuse a filesystem larger than `max_mb`: that is a real disk, not a ballast's."""
        blocks, block_size = self._run("stat", "-f", "-c", "%b %S", str(home)).split()
        size, limit = int(blocks) * int(block_size), self.params["max_mb"] * MB
        if size > limit:
            raise FaultNotEffective(
                f"the filesystem holding {home} is {size // MB} MiB, more than the "
                f"{limit // MB} MiB a size-limited data filesystem may be, so filling it would "
                "fill a real disk; put the data directory on one (Target.ensure_data_fs, "
                "'opsdrill up --data-fs-size 64m') to run this fault"
            )

    def _inject(self) -> None:
        home, files = self._home(), self.target.files(SERVICE)
        self._check_size_limited(home)
        ballast = home / "tmp" / f"opsdrill-ballast-{self.entry.fault_id}.tmp"
        self.save_undo(ballast=str(ballast))
        self._run("mkdir", "-p", str(ballast.parent))
        size = files.fill(ballast, self.params["max_mb"] * MB)
        old = int(time.time() - BALLAST_AGE_DAYS * 86400)
        self._run("touch", "-d", f"@{old}", str(ballast))
        self.save_undo(ballast=str(ballast), ballast_bytes=size)
        probe = home / f".opsdrill_write_probe_{self.entry.fault_id}"
        try:
            files.write_text(probe, PROBE)
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                return
            raise
        finally:
            files.remove(probe)
        raise FaultNotEffective(f"{ballast} holds {size} bytes but a write in {home} still works")

    def _revert(self) -> None:
        if path := self.entry.undo.get("ballast"):
            self.target.files(SERVICE).remove(path)
