"""One ssh connection to a host, shared by testinfra's `ssh://` backend and opsdrill's own
commands (a ControlMaster, so each command after the first costs a round trip, not a login).

Host keys are checked strictly against the known_hosts file the target file names: a host
whose key is not recorded is refused, never trusted on first use. Every way ssh can fail before
the remote command runs (exit 255) becomes one sentence naming what to fix.
"""

from __future__ import annotations

import hashlib
import shlex
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from opsdrill.errors import MissingDependency, PrivilegeError, TargetUnreachable, UsageError
from opsdrill.targets.model import ExecResult

__all__ = ["SshHost", "ssh_failure"]

#: ssh's own failures (exit 255), by what its stderr says -> (error class, what to do)
FAILURES = (
    ("could not resolve hostname", TargetUnreachable, "the host name does not resolve"),
    ("connection refused", TargetUnreachable, "nothing listens for ssh on that port"),
    ("connection timed out", TargetUnreachable, "the host does not answer"),
    ("no route to host", TargetUnreachable, "the host does not answer"),
    ("permission denied", PrivilegeError, "the host refused the key (ssh_key)"),
    ("host key verification failed", PrivilegeError,
     "the host's key is not the one recorded in known_hosts"),
    ("identification has changed", PrivilegeError,
     "the host's key is not the one recorded in known_hosts"),
)  # fmt: skip


def ssh_failure(spec: str, stderr: str) -> Exception:
    """The one-sentence error for an ssh that failed before running the command."""
    low = stderr.lower()
    for needle, cls, what in FAILURES:
        if needle in low:
            return cls(f"ssh to {spec}: {what}")
    last = stderr.strip().splitlines()[-1] if stderr.strip() else "no message"
    return TargetUnreachable(f"ssh to {spec} failed: {last}")


@dataclass(frozen=True)
class SshHost:
    """`ssh://USER@HOST[:PORT]` with a key and a known_hosts file."""

    spec: str
    key: Path
    known_hosts: Path
    connect_timeout: int = 10

    def __post_init__(self) -> None:
        parts = urlsplit(self.spec)
        if parts.scheme != "ssh" or not parts.hostname or not parts.username:
            raise UsageError(f"host {self.spec!r} must be ssh://USER@HOST[:PORT]")
        for key, path in (("ssh_key", self.key), ("known_hosts", self.known_hosts)):
            if not path.is_file():
                raise UsageError(f"{key} {path} does not exist")

    @property
    def control_path(self) -> str:
        digest = hashlib.sha256(f"{self.spec} {self.key} {self.known_hosts}".encode()).hexdigest()[
            :12
        ]
        return f"{tempfile.gettempdir()}/opsdrill-ssh-{digest}"

    def options(self) -> list[str]:
        """The options every ssh to this host uses (testinfra's too)."""
        return [
            "-o", "BatchMode=yes", "-o", "PasswordAuthentication=no",
            "-o", "IdentitiesOnly=yes", "-i", str(self.key),
            "-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={self.known_hosts}",
            "-o", f"ConnectTimeout={self.connect_timeout}", "-o", "ControlMaster=auto",
            "-o", "ControlPersist=60s", "-o", f"ControlPath={self.control_path}",
            "-o", "LogLevel=ERROR",
        ]  # fmt: skip

    def testinfra_spec(self) -> tuple[str, dict[str, str]]:
        """What `testinfra.get_host` takes for this host."""
        return self.spec, {"ssh_extra_args": shlex.join(self.options())}

    def argv(self, remote: Sequence[str]) -> list[str]:
        parts = urlsplit(self.spec)
        port = ["-p", str(parts.port)] if parts.port else []
        return ["ssh", *self.options(), *port, f"{parts.username}@{parts.hostname}", "--",
                shlex.join(remote)]  # fmt: skip

    def run(
        self, remote: Sequence[str], *, timeout: float = 60.0, stdin: bytes | None = None
    ) -> ExecResult:
        """Run `remote` (an argv, quoted for the remote shell); ssh's own failures raise."""
        argv = tuple(remote)
        try:
            done = subprocess.run(
                self.argv(argv), input=stdin, capture_output=True, timeout=timeout,
                stdin=None if stdin is not None else subprocess.DEVNULL,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            return ExecResult(argv, 124, "", f"timed out after {timeout:.0f} s")
        except FileNotFoundError:
            raise MissingDependency(
                "ssh is not installed: apt-get install openssh-client"
            ) from None
        out = done.stdout.decode(errors="replace")
        err = done.stderr.decode(errors="replace")
        if done.returncode == 255:
            raise ssh_failure(self.spec, err)
        return ExecResult(argv, done.returncode, out, err)
