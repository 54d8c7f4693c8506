"""`ServiceFiles` on this machine's own filesystem: the embedded stack's services' files."""

from __future__ import annotations

import contextlib
import errno
import glob
import os
import tempfile
from pathlib import Path, PurePosixPath

from opsdrill.targets.files import ServiceFiles

__all__ = ["LocalFiles"]

CHUNK = 1024 * 1024


class LocalFiles(ServiceFiles):
    """Plain file I/O: the services run on this machine, as opsdrill does."""

    def read_text(self, path: PurePosixPath | str) -> str:
        return Path(path).read_text()

    def read_bytes(self, path: PurePosixPath | str) -> bytes:
        return Path(path).read_bytes()

    def glob(self, pattern: PurePosixPath | str) -> list[str]:
        return sorted(glob.glob(str(pattern)))

    def write_text(self, path: PurePosixPath | str, text: str, mode: int = 0o644) -> None:
        dest = Path(path)
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.")
        try:
            with os.fdopen(fd, "w") as out:
                out.write(text)
            os.chmod(tmp, mode)
            with contextlib.suppress(OSError):  # keep the owner the service gave the file
                st = dest.stat()
                os.chown(tmp, st.st_uid, st.st_gid)
            os.replace(tmp, dest)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def remove(self, path: PurePosixPath | str) -> None:
        if Path(path).is_dir() and not Path(path).is_symlink():
            Path(path).rmdir()
        else:
            Path(path).unlink(missing_ok=True)

    def exists(self, path: PurePosixPath | str) -> bool:
        return Path(path).exists()

    def fill(self, path: PurePosixPath | str, max_bytes: int) -> int:
        """Unbuffered writes, big, then of one filesystem block once it says ENOSPC; at that
        size each ENOSPC is retried once after an fsync, which hands back the blocks the
        filesystem held in reserve for delayed allocation, so the last ones are taken too."""
        zeros = memoryview(bytes(CHUNK))
        written, size, flushed = 0, CHUNK, False
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        block = os.fstatvfs(fd).f_frsize or 4096  # 1 KiB on a small ext4: a probe fits in one
        try:
            while written < max_bytes:
                try:
                    written += os.write(fd, zeros[: min(size, max_bytes - written)])
                    flushed = False
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    if size > block:
                        size = max(block, size // 16)
                    elif flushed:
                        break  # full even after the reserve came back
                    else:
                        with contextlib.suppress(OSError):
                            os.fsync(fd)
                        flushed = True
            with contextlib.suppress(OSError):  # ENOSPC again on flush: it is full
                os.fsync(fd)
        finally:
            os.close(fd)
        return written

    def free_bytes(self, path: PurePosixPath | str) -> int:
        st = os.statvfs(path)
        return st.f_bavail * st.f_frsize
