"""The Target interface: where a stack lives and how to control its services.

Checks, drills and load tests speak only this interface (as testinfra's modules speak only
`Backend.run`), so one test runs unchanged on the embedded stack, on Compose or on a host.
"""

from __future__ import annotations

import signal
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import testinfra

from opsdrill.errors import CapabilityMissing, DestructiveRefused, UsageError
from opsdrill.monitoring.prometheus_files import SHORTENED
from opsdrill.probes.stack_cpu import stack_cpu_percent
from opsdrill.state import STATE_FILE
from opsdrill.targets.drill_parts import DrillParts, ProxyHops
from opsdrill.targets.files import ServiceFiles
from opsdrill.targets.model import (
    Endpoints,
    ExecResult,
    MemoryUsage,
    ProxyLink,
    Say,
    ServiceStatus,
)

__all__ = ["CAPABILITIES", "ProxyHops", "Service", "Target"]


#: What a drill may need of a target beyond its services and endpoints, and the `Target`
#: methods a backend overrides to offer it: the default `Target.capabilities` is the set whose
#: methods the backend's class overrides, so a backend never claims what it cannot do. `gpu`
#: is a fact of the machine, not of the code (`Target.has_gpu`).
CAPABILITIES: dict[str, tuple[str, ...]] = {
    "fault_journal": ("journal_dir",),  # faults are journaled (on opsdrill's machine) first
    "admin_sql": ("admin_dsn",),  # superuser access to PostgreSQL (kill sessions, drop rows)
    "exec": ("exec",),  # run a command where a service runs (hogs, port holders, pg tools)
    "ops_cli": ("ops",),  # the stack's ops CLI (backup, restore, migrate, archive)
    "service_files": ("files",),  # read/write/remove/fill files where a service runs
    "data_filesystem": ("ensure_data_fs",),  # a size-limited filesystem that can really fill
    # lower a service's memory limit (a real OOM kill), count the kills, read its memory
    "memory_limit": ("set_memory_limit", "oom_kills", "memory"),
    "toxiproxy": ("proxy_for",),  # a proxy between the parts that can add latency, resets
    "service_control": ("service_control",),  # start/stop/kill the services themselves
    "gpu": ("has_gpu",),  # a CUDA device where the training runs
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

    def restarts_itself(self) -> str | None:
        """What brings it back by itself after a kill (a supervisor's restart policy), or
        None: a drill that needs it down for a while then stops it instead, and says why."""
        return None

    def restart(self, timeout: float = 60.0) -> None:
        """Stop, then start and wait until ready."""
        self.stop()
        self.start(timeout=timeout)

    def pause(self) -> None:
        """Freeze every process of the service: alive, answering nothing. A backend that can
        (a container's cgroup freezer) overrides it, with `unpause` and `paused`."""
        raise CapabilityMissing(f"service {self.name!r} cannot be paused on this target")

    def unpause(self) -> None:
        """Thaw what `pause` froze; a no-op when it is not paused."""
        raise CapabilityMissing(f"service {self.name!r} cannot be paused on this target")

    def paused(self) -> bool:
        """True while `pause` holds it frozen."""
        return False

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
    #: the interpreter the app runs with, where it runs (`exec` of Python helpers: hogs,
    #: port holders, the GPU memory holder, which needs the app's torch)
    python: str = "python3"

    @property
    @abstractmethod
    def endpoints(self) -> Endpoints:
        """How to reach the stack."""

    @property
    @abstractmethod
    def services(self) -> Mapping[str, Service]:
        """The services this target has (a subset of SERVICE_NAMES)."""

    def fleet(self) -> Sequence[Target]:
        """The machines the deployment runs on, each a target of its own, this one first.

        One machine unless a target file lists more api hosts (runbook §7, several app
        servers behind a balancer): checks of one machine (`machine` fixture) run per host.
        """
        return (self,)

    def testinfra_host(self) -> Any:
        """testinfra's host for this target's machine (disk, memory, files, processes)."""
        return testinfra.get_host(self.host_spec)

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
        """Where opsdrill keeps this stack's state (ports, pids, journal) when it runs the
        stack itself; None for a deployment managed elsewhere. Such a backend overrides it."""
        return None

    def exists(self) -> bool:
        """True once the stack exists, running or not; a deployment managed elsewhere does."""
        home = self.state_home()
        return home is None or (home / STATE_FILE).exists()

    def is_up(self) -> bool:
        """True when every service runs."""
        return all(s.is_running() for s in self.services.values())

    @property
    def spec(self) -> str:
        """The `--target` spec that builds this target again in another process (a game
        day's suites); a backend whose name is not its spec overrides it."""
        return self.name

    def status(self) -> list[ServiceStatus]:
        """Each service now; read-only: a stack that does not exist yet stays so."""
        if not self.exists():
            return [ServiceStatus(n, False, False, None, None) for n in self.services]
        return [
            ServiceStatus(n, s.is_running(), s.healthy(), s.pid(), s.url)
            for n, s in self.services.items()
        ]

    def absent_services(self) -> list[str]:
        """Services this target would have but lacks here (a package not installed)."""
        return []

    def up(self, *, train: bool = True, say: Say = print) -> None:
        """Create or start the stack (first time: `train` its first model); only a stack
        opsdrill runs itself can be."""
        raise UsageError(
            f"target {self.name!r} is deployed elsewhere: opsdrill does not start it; "
            "start it with its own tooling"
        )

    def down(self, say: Say = print) -> None:
        """Stop the stack; only a stack opsdrill runs itself can be."""
        raise UsageError(f"target {self.name!r} is deployed elsewhere: opsdrill does not stop it")

    def destroy(self) -> None:
        """Stop the stack and delete its state; only a stack opsdrill runs itself can be."""
        raise UsageError(f"target {self.name!r} is deployed elsewhere: opsdrill does not delete it")

    # -- the seam: what faults, recovery procedures and detectors ask of any target ----------
    # Each raises CapabilityMissing (the sentence a drill skips with) unless a backend
    # implements it; `capabilities` is derived from which of them the backend overrides.

    @property
    def journal_dir(self) -> Path:
        """Where opsdrill keeps this target's fault journal and drill lock, on the machine
        running opsdrill (never on the target), so `opsdrill rollback --target SPEC` finds it."""
        raise CapabilityMissing(f"target {self.name!r} keeps no fault journal")

    @property
    def admin_dsn(self) -> str:
        """A superuser connection string for the stack's database."""
        dsn = self.endpoints.admin_dsn
        if not dsn:
            raise CapabilityMissing(
                f"target {self.name!r} has no admin database access: name an admin_dsn_env"
            )
        return dsn

    def exec(
        self,
        service: str,
        argv: Sequence[str],
        *,
        timeout: float = 60.0,
        user: str | None = None,
        env: Mapping[str, str] | None = None,
        detach: bool = False,
    ) -> ExecResult:
        """Run `argv` where `service` runs (this machine, its container, its host), as the
        service's user unless `user` says otherwise. `detach=True` starts it in the background
        and returns at once with its pid in stdout (for hogs and port holders a fault stops by
        pid). Never raises for a non-zero exit: the caller judges `ExecResult.ok`."""
        raise CapabilityMissing(f"target {self.name!r} cannot run commands where its services run")

    def ops(self, *args: str, timeout: float = 600.0, database: str | None = None) -> ExecResult:
        """The stack's ops CLI (`python -m nf_auto_runner.ops ARGS`), run as the app runs it
        (its environment, its user, the direct database link so a network fault on the proxy
        does not stop a recovery procedure). `database` names another database of the same
        server to run against instead (a scratch copy to restore a backup into)."""
        raise CapabilityMissing(f"target {self.name!r} cannot run the stack's ops CLI")

    def app_main(self, *args: str, timeout: float = 60.0) -> ExecResult:
        """The app's own entry point (`python -m nf_auto_runner.app.main ARGS`) with the app's
        environment, where it runs: its `--check-config` is §5.2.1's diagnosis."""
        return self.exec(
            "api", [self.python, "-m", "nf_auto_runner.app.main", *args], timeout=timeout
        )

    def files(self, service: str) -> ServiceFiles:
        """File operations on `service`'s filesystem."""
        raise CapabilityMissing(f"target {self.name!r} cannot reach its services' files")

    def set_memory_limit(self, service: str, limit_bytes: int | None) -> int | None:
        """Set `service`'s memory limit (None: unlimited) and return the previous one, so a
        fault can journal it before acting. "worker" is the training workers wherever they run
        (a cgroup of their own, the api container, the app's unit)."""
        raise CapabilityMissing(f"target {self.name!r} cannot change a service's memory limit")

    def oom_kills(self, service: str) -> int:
        """How many times the kernel OOM-killed a process of `service` (a counter that only
        grows), so a drill can prove a kill happened rather than infer it."""
        raise CapabilityMissing(f"target {self.name!r} cannot count OOM kills")

    def memory(self, service: str) -> MemoryUsage:
        """`service`'s memory limit, peak use and process count now (the §5.2.3 diagnosis;
        a drill waits for its processes to be gone)."""
        raise CapabilityMissing(f"target {self.name!r} cannot read a service's memory use")

    def stack_cpu_percent(self, window: float = 1.0) -> float:
        """Percent of the host's CPUs the stack's own processes used over `window` seconds:
        the CPU row where the host is shared with other work (`dedicated_host` False)."""
        pids = [p for s in self.services.values() if (p := s.pid()) is not None]
        return stack_cpu_percent(pids, window)

    def socket_service(self, service: str) -> str:
        """Where `service`'s listening sockets can be seen and another process can bind its
        port while it is stopped: the service itself, unless its network namespace is held by
        another (a container sharing a pod's namespace)."""
        return service

    def listen_port(self, service: str) -> int:
        """The port `service` binds where it runs (its URL's port, unless it is published
        under another)."""
        url = self.service(service).url or ""
        port = urlsplit(url).port
        if port is None:
            raise CapabilityMissing(f"target {self.name!r} gives no port for {service}")
        return port

    def stack_pids(self, service: str) -> set[int]:
        """The pids of the stack's running services as seen where `service` runs: never an
        offender of `top` there, nor are their descendants. By default every service shares
        one pid namespace (this machine, a host); a container sees only its own main process."""
        return {pid for s in self.services.values() if s.is_running() and (pid := s.pid())}

    def clear_leftovers(self, service: str) -> list[str]:
        """After `service` stopped: kill what is left of it by its pid file (checked to be
        this stack's process, never a name matched), remove the pid file and stale sockets;
        the actions taken. A backend whose stop leaves nothing behind (a container, a unit
        with its cgroup) has nothing to do."""
        return []

    def rule_scaling_text(self) -> str | None:
        """The text of the `shortened.json` beside the rules this target's Prometheus runs
        (every `for:` and window it runs shorter than production), or None when its rules
        are production's. An alert's MTTD at production scale is read from it."""
        home = self.state_home()
        try:
            return None if home is None else (home / SHORTENED).read_text()
        except OSError:
            return None

    @property
    def process_scope(self) -> Path | None:
        """On a machine shared with other work: the directory under which the stack's own
        processes (and those `exec` starts) write their output, so a `top` of this machine's
        processes looks at the stack's only; None: every process here is the stack's."""
        return None

    def proxy_for(self, link: str) -> ProxyLink:
        """The Toxiproxy hop on `link` (one of LINKS) as it is now; `ensure_proxy` puts the
        hops in place where a backend can add them."""
        raise CapabilityMissing(
            f"target {self.name!r} has no Toxiproxy on the {link} link; run network drills "
            "against a deployment that has one in front of its database and API"
        )

    @property
    def service_control(self) -> bool:
        """True when the backend can start, stop and signal its services (a Service's
        start/stop/kill work); a backend that can overrides this property."""
        return False

    @property
    def has_gpu(self) -> bool:
        """A CUDA device where the training runs."""
        return False

    @property
    def kind(self) -> str:
        """The backend's name for reports ("embedded", "compose", "host", "file")."""
        return type(self).__name__.removesuffix("Target").lower() or "target"

    @property
    def capabilities(self) -> frozenset[str]:
        """What drills may ask of this target: the capabilities whose methods (CAPABILITIES)
        this backend's class overrides; `gpu` when a device is there."""
        cls = type(self)
        have = {
            cap
            for cap, attrs in CAPABILITIES.items()
            if all(getattr(cls, a, None) is not getattr(Target, a, None) for a in attrs)
        }
        have.discard("gpu")
        if "admin_sql" in have or self.endpoints.admin_dsn:
            have.add("admin_sql")
        if self.service_control:
            have.add("service_control")
        else:
            have.discard("service_control")
        if self.has_gpu:
            have.add("gpu")
        return frozenset(have)
