"""A service's files on a host, read and written over ssh as the service's user."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from pathlib import PurePosixPath
from typing import Any, Protocol

from opsdrill.targets.files import SHELL_GLOB, SHELL_REMOVE, ServiceFiles
from opsdrill.targets.host.ssh import SshHost
from opsdrill.targets.model import ExecResult

__all__ = ["FilesHost", "SshFiles"]


class FilesHost(Protocol):
    """What the files ask of their host (`HostTarget`): commands over its ssh connection, as
    the user a service's files belong to."""

    ssh: SshHost

    def files_user(self, service: str) -> str | None: ...
    def run(self, argv: Sequence[str], *, timeout: float = 60.0, **kw: Any) -> ExecResult: ...


class SshFiles(ServiceFiles):
    """A service's files on the host, read and written over ssh as the service's user (or the
    ssh user, where sudoers gives no way to become it: `HostTarget.files_user`)."""

    def __init__(self, target: FilesHost, service: str) -> None:
        self.target = target
        self.service = service

    def _sh(self, script: str, *args: str, stdin: bytes | None = None) -> ExecResult:
        argv = ["sh", "-c", script, "sh", *args]
        if (user := self.target.files_user(self.service)) is not None:
            argv = ["sudo", "-n", "-u", user, "--", *argv]
        return self.target.run(argv, stdin=stdin)

    def _check(self, done: ExecResult, what: str, path: PurePosixPath | str) -> ExecResult:
        if "No such file" in done.stderr:
            raise FileNotFoundError(f"{path} does not exist on {self.target.ssh.spec}")
        if not done.ok:
            raise OSError(f"{what} {path} on {self.target.ssh.spec}: {done.output(300)}")
        return done

    def read_text(self, path: PurePosixPath | str) -> str:
        return self._check(self._sh('cat -- "$1"', str(path)), "reading", path).stdout

    def read_bytes(self, path: PurePosixPath | str) -> bytes:
        """Through base64, since the remote command's output comes back as text."""
        done = self._check(self._sh('base64 -- "$1"', str(path)), "reading", path)
        try:
            return base64.b64decode(done.stdout)
        except binascii.Error as exc:
            raise OSError(f"reading {path} on {self.target.ssh.spec}: bad base64 ({exc})") from None

    def glob(self, pattern: PurePosixPath | str) -> list[str]:
        done = self._check(self._sh(SHELL_GLOB, str(pattern)), "listing", pattern)
        return sorted(done.stdout.splitlines())

    def write_text(self, path: PurePosixPath | str, text: str, mode: int = 0o644) -> None:
        script = 'set -e; t=$(mktemp "$1.XXXXXX"); cat >"$t"; chmod "$2" "$t"; mv -f "$t" "$1"'
        done = self._sh(script, str(path), f"{mode:o}", stdin=text.encode())
        self._check(done, "writing", path)

    def remove(self, path: PurePosixPath | str) -> None:
        self._check(self._sh(SHELL_REMOVE, str(path)), "removing", path)

    def exists(self, path: PurePosixPath | str) -> bool:
        return self._sh('test -e "$1"', str(path)).ok

    def fill(self, path: PurePosixPath | str, max_bytes: int) -> int:
        script = (
            'dd if=/dev/zero of="$1" bs=1M count="$2" oflag=append conv=notrunc,fsync '
            '2>/dev/null; stat -c %s "$1"'
        )
        mb = max(1, max_bytes // (1024 * 1024))
        done = self._sh(script, str(path), str(mb))
        return int(done.stdout.strip().splitlines()[-1]) if done.stdout.strip() else 0

    def free_bytes(self, path: PurePosixPath | str) -> int:
        done = self._check(self._sh('df -B1 --output=avail "$1" | tail -1', str(path)), "df", path)
        return int(done.stdout.strip())
