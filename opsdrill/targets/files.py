"""A service's filesystem wherever it is, and the shell one-liners backends that reach it
through a shell (a container, a host over ssh) share."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import PurePosixPath

__all__ = ["SHELL_GLOB", "SHELL_REMOVE", "ServiceFiles"]


#: `sh -c SHELL_GLOB sh PATTERN`: the paths the pattern matches, one a line, sorted by the
#: shell; with IFS empty the pattern is globbed but never split on spaces (backends that reach
#: a service's files through a shell: a container, a host over ssh)
SHELL_GLOB = 'IFS=; for f in $1; do { [ -e "$f" ] || [ -L "$f" ]; } && printf "%s\\n" "$f"; done; :'


#: `sh -c SHELL_REMOVE sh PATH`: `ServiceFiles.remove` through a shell (a file, a symlink, or
#: an empty directory; nothing when it is not there)
SHELL_REMOVE = 'if [ -d "$1" ] && [ ! -L "$1" ]; then rmdir -- "$1"; else rm -f -- "$1"; fi'


class ServiceFiles(ABC):
    """A service's filesystem, wherever it is (this machine, a container, a host over ssh).

    Paths are the service's own (POSIX, absolute). Writes go through the backend's own
    channel (a local write, `docker exec`, ssh), never through a shared mount assumption.
    """

    @abstractmethod
    def read_text(self, path: PurePosixPath | str) -> str:
        """The file's text; FileNotFoundError when it is not there."""

    @abstractmethod
    def read_bytes(self, path: PurePosixPath | str) -> bytes:
        """The file's bytes (an archive, a compressed backup); FileNotFoundError when it is
        not there."""

    @abstractmethod
    def glob(self, pattern: PurePosixPath | str) -> list[str]:
        """The paths matching a shell pattern (`*`, `?`, `[...]`, as Prometheus's rule_files
        take them), sorted; a pattern without wildcards lists the path when it exists."""

    @abstractmethod
    def write_text(self, path: PurePosixPath | str, text: str, mode: int = 0o644) -> None:
        """Replace the file atomically (temp file and rename in the same directory), its
        directory created first when missing."""

    @abstractmethod
    def remove(self, path: PurePosixPath | str) -> None:
        """Remove a file or an empty directory; a no-op when it is not there."""

    @abstractmethod
    def exists(self, path: PurePosixPath | str) -> bool:
        """True when the path exists."""

    @abstractmethod
    def fill(self, path: PurePosixPath | str, max_bytes: int) -> int:
        """Write zeros to `path` until the filesystem says ENOSPC or `max_bytes` are written;
        return the bytes written. The caller journals `path` first and removes it to undo."""

    @abstractmethod
    def free_bytes(self, path: PurePosixPath | str) -> int:
        """Bytes free to an unprivileged writer on the filesystem holding `path`."""
