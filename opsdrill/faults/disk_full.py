"""Fill the app's data filesystem with a ballast file: runbook §5.2.4 (disk full).

Real `ENOSPC`: the ballast takes every free block of the size-limited filesystem that holds
the app's data (NF_HOME on the embedded stack and a host; the models volume on compose),
written where the app runs through the target's file operations (`Target.files(...).fill`), so
the next write there fails as it would on a full disk. The data must be on a filesystem of its
own, as `Target.ensure_data_fs` gives it (or `opsdrill up --data-fs-size 64m`); a filesystem larger
than `max_mb` is taken for a real disk and refused, since filling it would break everything
else. The ballast is a forgotten temp file (`tmp/*.tmp` there, mtime ten days ago), so the
§5.2.4 clean-up finds it; the revert deletes it by its journaled path whatever the clean-up did.
"""

from __future__ import annotations

import time
from pathlib import PurePosixPath

from opsdrill.errors import FaultNotEffective
from opsdrill.faults.base import JOURNAL, Fault, register
from opsdrill.targets.base import Target

__all__ = ["ENOSPC", "DiskFull", "filesystem_type", "probe_write"]

MB = 1024 * 1024
BALLAST_AGE_DAYS = 10
SERVICE = "api"
#: what a write on a full filesystem says (strerror(ENOSPC))
ENOSPC = "No space left on device"


def probe_write(target: Target, directory: PurePosixPath | str) -> str | None:
    """Write and fsync 8 KiB in `directory` where the app runs, then delete it: the error the
    write met (e.g. "No space left on device"), None when it worked."""
    path = PurePosixPath(directory) / ".opsdrill_write_probe"
    script = 'dd if=/dev/zero of="$1" bs=8192 count=1 conv=fsync 2>&1; rc=$?; rm -f "$1"; exit $rc'
    done = target.exec(SERVICE, ["sh", "-c", script, "sh", str(path)], timeout=30)
    return None if done.ok else (done.output(300) or f"dd exited {done.returncode}")


def filesystem_type(target: Target, directory: PurePosixPath | str) -> str:
    """The type of the filesystem holding `directory` where the app runs (stat -f: ext2/ext3
    for ext4, tmpfs, ...); HighDiskUsage ignores pseudo filesystems such as tmpfs."""
    done = target.exec(SERVICE, ["stat", "-f", "-c", "%T", str(directory)], timeout=30)
    return done.stdout.strip() if done.ok else "unknown"


@register
class DiskFull(Fault):
    """The filesystem holding models and logs is full: every write there fails with ENOSPC."""

    kind = "disk_full"

    needs = JOURNAL | {"service_files", "data_filesystem", "exec"}
    blast_radius = "writes to models and logs: training runs, app log, /health storage check"
    undo_summary = "delete the ballast file by its journaled path"

    def __init__(self, target: Target, *, directory: str | None = None, max_mb: int = 1024) -> None:
        super().__init__(target, directory=directory, max_mb=max_mb)

    def _home(self) -> PurePosixPath:
        """The directory whose filesystem is filled: `directory`, else NF_HOME."""
        home = self.params.get("directory") or self.target.endpoints.home
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
        error = probe_write(self.target, home)
        if error is not None and ENOSPC in error:
            return
        raise FaultNotEffective(
            f"{ballast} holds {size} bytes but a write in {home} "
            + (f"failed otherwise: {error}" if error else "still works")
        )

    def _revert(self) -> None:
        if path := self.entry.undo.get("ballast"):
            self.target.files(SERVICE).remove(path)
