"""A target held in memory: services that are flags, endpoints that point where a test says,
a fault journal in a directory the test gives.

For opsdrill's runner logic (the guard, the drill runner's verdicts, rollback, the plan), where
a real stack would only make a test slow and the stack is not what it tests. It is never
production unless told, offers `service_control` and `fault_journal` (with a journal
directory), and nothing else: a drill that needs more is skipped on it, as on any target.
Every action on a service is recorded in `FakeTarget.actions`, so a test can say what a
fault or a procedure did.
"""

from __future__ import annotations

import signal
from collections.abc import Iterable, Mapping
from pathlib import Path

from opsdrill.errors import CapabilityMissing
from opsdrill.targets.base import Service, Target
from opsdrill.targets.model import Endpoints

__all__ = ["FakeService", "FakeTarget"]


class FakeService(Service):
    """A service that is a flag: running or not, healthy while running unless told not."""

    def __init__(self, name: str, target: FakeTarget, *, running: bool = True) -> None:
        self.name = name
        self.target = target
        self.running = running
        self.sick = False  # running but failing its readiness probe
        self._pid = 1000 + len(target.actions) + len(name)

    def is_running(self) -> bool:
        return self.running

    def pid(self) -> int | None:
        return self._pid if self.running else None

    def healthy(self) -> bool:
        return self.running and not self.sick

    def _act(self, action: str) -> None:
        self.target.require_destructive(f"{action} {self.name}", self.target.allow_destructive)
        self.target.actions.append(f"{action} {self.name}")

    def start(self, timeout: float = 60.0) -> None:
        if not self.running:
            self._act("start")
            self.running, self._pid = True, self._pid + 1

    def stop(self, timeout: float = 30.0) -> None:
        if self.running:
            self._act("stop")
            self.running = False

    def kill(self, sig: int = signal.SIGKILL) -> None:
        self._act(f"kill -{signal.Signals(sig).name}")
        if sig in (signal.SIGKILL, signal.SIGTERM):
            self.running = False


class FakeTarget(Target):
    """A stack in memory at `api_url` (nothing need answer there unless the test serves it)."""

    def __init__(
        self,
        api_url: str = "http://127.0.0.1:9",
        *,
        services: Iterable[str] = ("db", "api"),
        journal: Path | None = None,
        production: bool = False,
        name: str = "fake",
        prometheus_url: str | None = None,
    ) -> None:
        self.name = name
        self.production = production
        self.actions: list[str] = []
        self._journal = journal
        self._endpoints = Endpoints(
            api_url=api_url, dsn="postgresql://fake@127.0.0.1:9/fake", prometheus_url=prometheus_url
        )
        self._services = {s: FakeService(s, self) for s in services}

    @property
    def endpoints(self) -> Endpoints:
        return self._endpoints

    @property
    def services(self) -> Mapping[str, Service]:
        return self._services

    @property
    def service_control(self) -> bool:
        return True

    @property
    def capabilities(self) -> frozenset[str]:
        have = super().capabilities
        return have if self._journal is not None else have - {"fault_journal"}

    @property
    def journal_dir(self) -> Path:
        if self._journal is None:
            raise CapabilityMissing(f"target {self.name!r} keeps no fault journal")
        self._journal.mkdir(parents=True, exist_ok=True)
        return self._journal
