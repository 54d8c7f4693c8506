"""`ServiceFiles` inside a container: every operation goes through the Engine API (`docker
exec`, and `put_archive` for a new file's bytes), never through a shared mount, so it works on
a remote engine as on a local one."""

from __future__ import annotations

import base64
import binascii
import io
import tarfile
import time
from collections.abc import Callable, Sequence
from pathlib import PurePosixPath

from opsdrill.errors import ServiceError
from opsdrill.targets.files import SHELL_GLOB, SHELL_REMOVE, ServiceFiles
from opsdrill.targets.model import ExecResult

__all__ = ["ContainerFiles"]

Exec = Callable[[Sequence[str]], ExecResult]


class ContainerFiles(ServiceFiles):
    """A service container's filesystem, as its own user sees it."""

    def __init__(self, service: str, container: object, run: Exec) -> None:
        self.service = service
        self.container = container
        self.run = run

    def _sh(self, script: str, *args: str) -> ExecResult:
        return self.run(["sh", "-c", script, "sh", *args])

    def _fail(self, what: str, path: PurePosixPath | str, done: ExecResult) -> ServiceError:
        return ServiceError(f"{what} {path} in {self.service} failed: {done.output(300)}")

    def read_text(self, path: PurePosixPath | str) -> str:
        done = self.run(["cat", "--", str(path)])
        if not done.ok:
            if "No such file" in done.stderr:
                raise FileNotFoundError(f"{path} is not there in {self.service}")
            raise self._fail("reading", path, done)
        return done.stdout

    def read_bytes(self, path: PurePosixPath | str) -> bytes:
        """Through base64, since `docker exec` hands back text."""
        done = self.run(["base64", "--", str(path)])
        if not done.ok:
            if "No such file" in done.stderr:
                raise FileNotFoundError(f"{path} is not there in {self.service}")
            raise self._fail("reading", path, done)
        try:
            return base64.b64decode(done.stdout)
        except binascii.Error as exc:
            raise ServiceError(f"reading {path} in {self.service}: bad base64 ({exc})") from None

    def glob(self, pattern: PurePosixPath | str) -> list[str]:
        done = self._sh(SHELL_GLOB, str(pattern))
        if not done.ok:
            raise self._fail("listing", pattern, done)
        return sorted(done.stdout.splitlines())

    def write_text(self, path: PurePosixPath | str, text: str, mode: int = 0o644) -> None:
        """The bytes go in as a temp file beside `path` (put_archive, owned like the file or
        its directory), then `mv` replaces the file atomically."""
        dest = PurePosixPath(path)
        owner = self._sh('stat -c "%u %g" "$1" 2>/dev/null || stat -c "%u %g" "$2"',
                         str(dest), str(dest.parent))  # fmt: skip
        if not owner.ok:
            raise self._fail("writing", dest, owner)
        uid, gid = (int(x) for x in owner.stdout.split())
        tmp = f".{dest.name}.opsdrill-{time.monotonic_ns()}"
        data = text.encode()
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            info = tarfile.TarInfo(tmp)
            info.size, info.mode, info.uid, info.gid = len(data), mode, uid, gid
            info.mtime = int(time.time())
            tar.addfile(info, io.BytesIO(data))
        if not self.container.put_archive(str(dest.parent), buf.getvalue()):  # type: ignore[attr-defined]
            raise ServiceError(f"writing {dest} in {self.service}: the engine refused the bytes")
        moved = self._sh('mv -f "$1" "$2"', str(dest.parent / tmp), str(dest))
        if not moved.ok:
            self.run(["rm", "-f", "--", str(dest.parent / tmp)])
            raise self._fail("replacing", dest, moved)

    def remove(self, path: PurePosixPath | str) -> None:
        done = self._sh(SHELL_REMOVE, str(path))
        if not done.ok:
            raise self._fail("removing", path, done)

    def exists(self, path: PurePosixPath | str) -> bool:
        return self.run(["test", "-e", str(path)]).ok

    def fill(self, path: PurePosixPath | str, max_bytes: int) -> int:
        """`dd` zeros onto the file until ENOSPC (dd's own exit 1) or `max_bytes`; the bytes
        written are the file's growth, as the filesystem counts them."""
        mib = max(1, -(-max_bytes // (1024 * 1024)))
        script = (
            'before=$(stat -c %s "$1" 2>/dev/null || echo 0); '
            'dd if=/dev/zero of="$1" bs=1M count="$2" oflag=append conv=notrunc,fsync '
            "2>/tmp/.opsdrill-dd.err; rc=$?; "
            'after=$(stat -c %s "$1" 2>/dev/null || echo 0); echo $((after - before)); '
            'if [ $rc -ne 0 ] && ! grep -q "No space left" /tmp/.opsdrill-dd.err; then '
            "cat /tmp/.opsdrill-dd.err >&2; exit $rc; fi"
        )
        done = self._sh(script, str(path), str(mib))
        if not done.ok:
            raise self._fail("filling", path, done)
        return int(done.stdout.split()[-1])

    def free_bytes(self, path: PurePosixPath | str) -> int:
        done = self.run(["df", "-B1", "--output=avail", str(path)])
        if not done.ok:
            raise self._fail("df of", path, done)
        return int(done.stdout.split()[-1])

    def __repr__(self) -> str:
        return f"ContainerFiles({self.service!r})"
