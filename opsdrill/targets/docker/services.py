"""A compose service's container as a `Service`: signals, start, stop, pause through the API,
waiting on the container's healthcheck."""

from __future__ import annotations

import signal
from collections.abc import Mapping
from typing import Any, Protocol

from opsdrill.errors import (
    ServiceError,
    StartTimeout,
)
from opsdrill.polling import poll
from opsdrill.targets.base import Service
from opsdrill.targets.docker.sdk import docker
from opsdrill.targets.model import Endpoints

__all__ = ["ALERT_SINK_PORT", "ContainerHost", "ContainerService"]

#: the alert sink's port inside its container (compose.yaml)
ALERT_SINK_PORT = 5001


class ContainerHost(Protocol):
    """What a container asks of its target (`DockerTarget`): the right to change it, and its
    published ports, read again after a restart."""

    allow_destructive: bool

    @property
    def endpoints(self) -> Endpoints: ...
    def require_destructive(self, action: str, allowed: bool) -> None: ...
    def published(self, service: str, port: int) -> str | None: ...
    def forget_endpoints(self) -> None: ...


class ContainerService(Service):
    """One compose service's container, controlled through the Engine API."""

    def __init__(self, name: str, target: ContainerHost, container: Any) -> None:
        self.name = name
        self.target = target
        self.container = container

    def _state(self) -> Mapping[str, Any]:
        self.container.reload()
        return self.container.attrs["State"]

    def is_running(self) -> bool:
        return bool(self._state().get("Running"))

    def pid(self) -> int | None:
        state = self._state()
        return int(state["Pid"]) if state.get("Running") and state.get("Pid") else None

    def healthy(self) -> bool:
        """The container's healthcheck says healthy (running and not paused, without one)."""
        state = self._state()
        if not state.get("Running") or state.get("Paused"):
            return False
        health = state.get("Health")
        return health is None or health.get("Status") == "healthy"

    def paused(self) -> bool:
        return bool(self._state().get("Paused"))

    def oom_killed(self) -> bool:
        """The kernel's OOM killer ended the container's main process (State.OOMKilled)."""
        return bool(self._state().get("OOMKilled"))

    def _wait(self, ready: bool, timeout: float, what: str) -> None:
        """Poll until healthy (or stopped); a container that exits while it should come up
        is a refused start at once, with its exit code and last log lines (the app's own
        reason, e.g. a config error), as a unit's failed start is."""

        def there() -> bool | None:
            if (self.healthy() if ready else self.is_running()) == ready:
                return True
            state = self._state()
            if ready and state.get("Status") in ("exited", "dead"):
                tail = self.container.logs(tail=5).decode(errors="replace").strip()
                raise ServiceError(
                    f"{self.name} ({self.container.name}) exited with code "
                    f"{state.get('ExitCode')} instead of starting: {tail[-600:]}"
                )
            return None

        if poll(there, timeout, interval=0.2) is None:
            raise StartTimeout(
                f"{self.name} ({self.container.name}) not {what} within {timeout:.0f} s; "
                f"see `docker logs {self.container.name}`"
            )

    def start(self, timeout: float = 60.0) -> None:
        state = self._state()
        if state.get("Paused"):
            self.container.unpause()
        elif not state.get("Running"):
            self._api_call("start", self.container.start)
            self.target.forget_endpoints()  # a started container gets new ephemeral host ports
        self._wait(True, timeout, "healthy")

    def stop(self, timeout: float = 30.0) -> None:
        if self.is_running():
            self._api_call("stop", lambda: self.container.stop(timeout=int(timeout)))

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the container's main process; with SIGKILL the container exits at once."""
        self.target.require_destructive(f"kill {self.name}", self.target.allow_destructive)
        if not self.is_running():
            raise ServiceError(f"cannot signal {self.name}: its container is not running")
        self._api_call("kill", lambda: self.container.kill(signal=int(sig)))

    def restart(self, timeout: float = 60.0) -> None:
        self._api_call("restart", lambda: self.container.restart(timeout=10))
        self.target.forget_endpoints()
        self._wait(True, timeout, "healthy")

    def pause(self) -> None:
        """Freeze every process of the container (cgroup freezer): alive, but answering nothing."""
        self.target.require_destructive(f"pause {self.name}", self.target.allow_destructive)
        self._api_call("pause", self.container.pause)

    def unpause(self) -> None:
        if self.paused():
            self._api_call("unpause", self.container.unpause)

    def _api_call(self, verb: str, call: Any) -> None:
        try:
            call()
        except docker.errors.APIError as exc:
            raise ServiceError(
                f"docker {verb} {self.container.name} failed: {exc.explanation}"
            ) from None

    @property
    def url(self) -> str | None:
        if self.name == "api":
            return self.target.endpoints.api_url
        if self.name == "alert_sink":  # the receiver a drill reads its deliveries from
            where = self.target.published("alert_sink", ALERT_SINK_PORT)
            return f"http://{where}" if where else None
        return None
