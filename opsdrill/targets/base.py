"""The Target interface: where a stack lives and how to control its services.

Checks, drills and load tests speak only this interface (as testinfra's modules speak only
`Backend.run`), so one test runs unchanged on the embedded stack, on Compose or on a host.
"""

from __future__ import annotations

import signal
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

from opsdrill.errors import DestructiveRefused, UsageError
from opsdrill.state import STATE_FILE
from opsdrill.targets.drill_parts import DrillParts, ProxyHops

__all__ = ["CAPABILITIES", "SERVICE_NAMES", "Endpoints", "ProxyHops", "Service", "Target"]

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
    "worker",
)


#: What a drill may need of a target beyond its services and endpoints, and the attributes a
#: backend implements to offer it (the default `Target.capabilities` looks for them, so a
#: backend never claims what it cannot do). `gpu` is a fact of the machine, not of the code.
CAPABILITIES: dict[str, tuple[str, ...]] = {
    "fault_journal": ("state_dir",),  # faults are journaled before they are injected
    "admin_sql": ("cluster",),  # superuser access to PostgreSQL (kill sessions, drop rows)
    "app_files": ("home", "app_env"),  # the app's config, models and ops CLI on disk
    "data_filesystem": ("data_fs",),  # a size-limited filesystem that can really fill up
    "memory_cgroup": ("worker_cgroup",),  # a memory limit for the training workers
    "toxiproxy": ("toxiproxy_url",),  # a proxy between the parts that can add latency, resets
    "host_processes": (),  # start processes on the stack's host (hogs, port holders)
    "gpu": (),  # a CUDA device on the stack's host
}


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

    def public(self) -> dict[str, str | None]:
        """The endpoints safe to print: passwords and keys removed."""
        hidden = {"dsn", "admin_dsn", "api_key"}
        return {
            f.name: None if getattr(self, f.name) is None else str(getattr(self, f.name))
            for f in fields(self)
            if f.name not in hidden
        }


class Service(ABC):
    """One named part of the stack that can be inspected and controlled."""

    name: str

    @abstractmethod
    def is_running(self) -> bool:
        """True while the service's process (or container, or unit) is up."""

    @abstractmethod
    def pid(self) -> int | None:
        """The main process id, when the target can know it."""

    @abstractmethod
    def healthy(self) -> bool:
        """True when the service answers its readiness probe now."""

    @abstractmethod
    def start(self, timeout: float = 60.0) -> None:
        """Start it and wait until it is ready; a no-op when it already runs."""

    @abstractmethod
    def stop(self, timeout: float = 30.0) -> None:
        """Stop it gracefully, forcefully after `timeout`; a no-op when stopped."""

    @abstractmethod
    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send `sig` to its main process, by pid, without waiting."""

    def restart(self, timeout: float = 60.0) -> None:
        """Stop, then start and wait until ready."""
        self.stop()
        self.start(timeout=timeout)

    @property
    def url(self) -> str | None:
        """Where it listens, when it is a network service."""
        return None


class Target(DrillParts, ABC):
    """A deployment of the stack: its services, its endpoints, and whether it is production."""

    name: str = "target"
    production: bool = False
    #: testinfra host spec for host-level facts (disk, memory, files, processes)
    host_spec: str = "local://"
    #: set by the plugin from --allow-destructive; production refuses without it
    allow_destructive: bool = False
    #: False when the host also runs other work (opsdrill itself, CI): host-wide CPU then
    #: measures that work too, so CPU checks look at the stack's own processes instead
    dedicated_host: bool = True

    @property
    @abstractmethod
    def endpoints(self) -> Endpoints:
        """How to reach the stack."""

    @property
    @abstractmethod
    def services(self) -> Mapping[str, Service]:
        """The services this target has (a subset of SERVICE_NAMES)."""

    def service(self, name: str) -> Service:
        """The named service, or a clear error listing the ones this target has."""
        try:
            return self.services[name]
        except KeyError:
            have = ", ".join(sorted(self.services)) or "none"
            raise UsageError(
                f"target {self.name!r} has no service {name!r}; it has: {have}"
            ) from None

    def require_destructive(self, action: str, allowed: bool) -> None:
        """Refuse `action` on production whatever was allowed, elsewhere unless allowed.

        `--allow-destructive` never lifts the refusal on a production target: a game day on
        production needs a target file that says `production = false`, deliberately.
        """
        if self.production:
            raise DestructiveRefused(
                f"refusing to {action} on production target {self.name!r}: a production game "
                "day needs a target file that says production = false"
            )
        if not allowed:
            raise DestructiveRefused(
                f"refusing to {action} on target {self.name!r}: pass --allow-destructive"
            )

    # -- lifecycle: what a session may do with the stack --------------------------------------
    def state_home(self) -> Path | None:
        """Where opsdrill keeps this stack's state (journal, locks) when it runs the stack
        itself (a backend's `state_dir`); None for a deployment managed elsewhere."""
        home = getattr(self, "state_dir", None)
        return Path(home) if home is not None else None

    def exists(self) -> bool:
        """True once the stack exists, running or not; a deployment managed elsewhere does."""
        home = self.state_home()
        return home is None or (home / STATE_FILE).exists()

    def is_up(self) -> bool:
        """True when every service runs."""
        return all(s.is_running() for s in self.services.values())

    def up(self, *, say: Say = print) -> None:
        """Create or start the stack; only a stack opsdrill runs itself can be."""
        raise UsageError(
            f"target {self.name!r} is deployed elsewhere: opsdrill does not start it; "
            "start it with its own tooling"
        )

    def down(self, say: Say = print) -> None:
        """Stop the stack; only a stack opsdrill runs itself can be."""
        raise UsageError(f"target {self.name!r} is deployed elsewhere: opsdrill does not stop it")

    @property
    def capabilities(self) -> frozenset[str]:
        """What drills may ask of this target: derived from the attributes this backend
        implements (see CAPABILITIES); processes and the GPU only on this very machine."""
        cls = type(self)
        have = {
            cap
            for cap, attrs in CAPABILITIES.items()
            if attrs and all(hasattr(cls, a) or a in vars(self) for a in attrs)
        }
        if "fault_journal" in have and self.host_spec == "local://":
            have.add("host_processes")
            if _cuda_device_present():
                have.add("gpu")
        return frozenset(have)


def _cuda_device_present() -> bool:
    """A CUDA device node on this machine (cheap: no torch import, no CUDA context)."""
    return Path("/dev/nvidiactl").exists() or any(Path("/dev").glob("nvidia[0-9]*"))
