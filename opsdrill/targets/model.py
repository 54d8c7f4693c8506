"""The value types every target speaks in: endpoints, service status, command results, memory
figures, a proxy hop; and the names of services and links every target uses."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from urllib.parse import urlsplit

__all__ = [
    "LINKS",
    "SERVICE_NAMES",
    "Endpoints",
    "ExecResult",
    "MemoryUsage",
    "ProxyLink",
    "Say",
    "ServiceStatus",
    "public_url",
]


Say = Callable[[str], None]


#: The service names every target uses, so a test can ask for `target.service("db")` anywhere.
SERVICE_NAMES = (
    "db",
    "api",
    "prometheus",
    "alertmanager",
    "alert_sink",
    "node_exporter",
    "cgroup_exporter",
    "postgres_exporter",
    "proxy",
    "redis",
    "worker",
    "mlflow",
)


#: The network links a Toxiproxy hop can sit on (`Target.proxy_for`).
LINKS = ("app_db", "client_api")


@dataclass(frozen=True)
class ExecResult:
    """What a command run where a service runs (`Target.exec`) gave back."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str = ""

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def output(self, limit: int = 800) -> str:
        """The tail of stderr, else stdout: what an error message should quote."""
        text = (self.stderr.strip() or self.stdout.strip())[-limit:]
        return text or f"exit {self.returncode}, no output"


@dataclass(frozen=True)
class ServiceStatus:
    """One service as `opsdrill status` shows it."""

    name: str
    running: bool
    healthy: bool
    pid: int | None
    url: str | None


@dataclass(frozen=True)
class MemoryUsage:
    """What the kernel says of a service's memory now (`Target.memory`)."""

    #: the limit now; None when unlimited
    limit_bytes: int | None
    #: the most it has used (its current use where no peak is kept)
    peak_bytes: int
    #: processes counted against the limit now (0: none left, e.g. every worker gone); for
    #: "worker" where the group also holds the app (a container, a unit), its workers only
    processes: int
    #: what the group is charged now, where it holds more than the workers (the app in a
    #: container or unit): a limit meant for the workers goes on top of it; 0 elsewhere
    used_bytes: int = 0


@dataclass(frozen=True)
class ProxyLink:
    """One Toxiproxy hop: the Toxiproxy API that controls it and the proxy's name there."""

    toxiproxy_url: str
    proxy: str
    #: the link it sits on (one of LINKS)
    link: str


@dataclass(frozen=True)
class Endpoints:
    """How to reach the stack. Secrets are held here but never shown by repr()."""

    api_url: str
    dsn: str = field(repr=False)
    admin_dsn: str | None = field(default=None, repr=False)
    api_key: str | None = field(default=None, repr=False)
    prometheus_url: str | None = None
    alertmanager_url: str | None = None
    home: Path | None = None
    models_dir: Path | None = None
    logs_dir: Path | None = None
    backups_dir: Path | None = None
    mlflow_url: str | None = None  # the MLflow tracking server, when the stack runs one

    def public(self) -> dict[str, str | None]:
        """The endpoints safe to print: passwords and keys removed."""
        hidden = {"dsn", "admin_dsn", "api_key"}
        return {
            f.name: None if getattr(self, f.name) is None else str(getattr(self, f.name))
            for f in fields(self)
            if f.name not in hidden
        }


def public_url(url: str | None) -> str:
    """`url` safe to print: a password in it (a Redis URL from the environment) masked."""
    if not url:
        return ""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=f"{user}:***@{host}").geturl()
