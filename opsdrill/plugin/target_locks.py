"""Advisory locks on a target, with a bounded wait that names who holds them.

One lock file per target (keyed by its API URL, in the temp directory so it exists before the
stack does): checks hold it shared, a check that changes what others see and every drill hold
it exclusive, so a drill in one session never breaks the stack under another session's
checks or drill. `flock` is released by the kernel when its holder dies, so a killed session
never leaves a stale lock; the holder is named from `/proc/locks`.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from opsdrill.errors import TargetBusy
from opsdrill.polling import poll
from opsdrill.targets.base import Target

__all__ = ["holders", "lock_file", "state_lock"]

POLL = 0.05


def lock_file(purpose: str, key: str) -> Path:
    """The lock file for `purpose` on the thing named by `key` (a URL, a directory)."""
    digest = hashlib.sha1(key.encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"opsdrill-{purpose}-{digest}.lock"


def holders(path: Path) -> list[int]:
    """Pids holding a lock on `path` now (other than this process), from /proc/locks."""
    try:
        ino = os.stat(path).st_ino
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return []
    found = []
    for line in lines:
        parts = line.split()
        if len(parts) > 5 and parts[5].rsplit(":", 1)[-1] == str(ino) and "->" not in parts:
            found.append(int(parts[4]))
    return sorted({p for p in found if p != os.getpid()})


def describe(pid: int) -> str:
    """`pid 123 (pytest chaos …)`: enough to find the holder and stop it by pid."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        cmd = " ".join(a.decode(errors="replace") for a in argv if a)
    except OSError:
        return f"pid {pid}"
    return f"pid {pid} ({cmd[:80]})"


@contextlib.contextmanager
def flocked(
    path: Path,
    *,
    exclusive: bool,
    timeout: float | None,
    what: str,
    on_wait: Callable[[str], None] | None = None,
) -> Iterator[None]:
    """Hold `path` locked; wait at most `timeout` seconds (None: forever), then refuse.

    `on_wait` hears one line when the lock is taken and this caller has to wait."""
    mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
    with open(path, "a") as fh:
        if not _acquire(fh.fileno(), mode, 0):
            if on_wait is not None:
                limit = "" if timeout is None else f" up to {timeout:g} s"
                on_wait(f"waiting{limit} for {what}, held by {_holders_text(path)}")
            if timeout is None:
                fcntl.flock(fh, mode)
            elif not _acquire(fh.fileno(), mode, timeout):
                raise TargetBusy(
                    f"{what} is held by {_holders_text(path)}; waited {timeout:g} s: let it "
                    "finish, or stop it by that pid if it is stuck"
                )
        yield


def _holders_text(path: Path) -> str:
    return ", ".join(describe(p) for p in holders(path)) or "another process"


def _acquire(fd: int, mode: int, timeout: float) -> bool:
    """Poll for the lock until `timeout` (0: one try); True once it is ours."""

    def taken() -> bool | None:
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return None

    return poll(taken, timeout, interval=POLL) is not None


def state_lock(
    target: Target,
    *,
    exclusive: bool,
    timeout: float | None = None,
    on_wait: Callable[[str], None] | None = None,
) -> contextlib.AbstractContextManager[None]:
    """The target's state lock: shared for a check, exclusive for a drill or a writer."""
    return flocked(
        lock_file("target", target.endpoints.api_url),
        exclusive=exclusive,
        timeout=timeout,
        what=f"the state of target {target.name!r} ({target.endpoints.api_url})",
        on_wait=on_wait,
    )
