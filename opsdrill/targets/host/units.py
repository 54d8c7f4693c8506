"""A host's services as systemd units, controlled through `sudo -n systemctl` over ssh."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Sequence
from typing import Any, Protocol

from opsdrill.errors import PrivilegeError, ServiceError
from opsdrill.polling import poll
from opsdrill.probes.http import http_ok
from opsdrill.targets.file.target import HostService
from opsdrill.targets.model import Endpoints, ExecResult

__all__ = ["HostUnit", "UnitHost"]


class UnitHost(Protocol):
    """What a unit asks of its host (`HostTarget`): systemctl, the unit's properties and
    journal, and the session's right to change it."""

    allow_destructive: bool

    @property
    def endpoints(self) -> Endpoints: ...
    def require_destructive(self, action: str, allowed: bool) -> None: ...
    def systemctl(self, *args: str) -> ExecResult: ...
    def unit_property(self, unit: str, prop: str) -> str: ...
    def journal_tail(self, unit: str, lines: int = 6) -> str: ...
    def run(self, argv: Sequence[str], *, timeout: float = 60.0, **kw: Any) -> ExecResult: ...


class HostUnit(HostService):
    """A systemd unit on the host, controlled through `sudo -n systemctl`."""

    target: UnitHost  # the HostTarget it runs on

    def _control(self, verb: str) -> None:
        self.target.require_destructive(f"{verb} {self.name}", self.target.allow_destructive)
        self.target.systemctl(verb, self.unit)

    @property
    def unit(self) -> str:
        assert self.systemd
        return self.systemd

    def stop(self, timeout: float = 30.0) -> None:
        self._control("stop")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """`systemctl kill -s SIG UNIT`: every process of the unit, as a crash would."""
        self.target.require_destructive(f"kill {self.name}", self.target.allow_destructive)
        self.target.systemctl("kill", "-s", signal.Signals(sig).name, self.unit)

    def healthy(self) -> bool:
        return self.target.unit_property(self.unit, "ActiveState") == "active"

    def restarts_itself(self) -> str | None:
        policy = self.target.unit_property(self.unit, "Restart")
        return None if policy in ("", "no") else f"systemd's Restart={policy} for {self.unit}"

    def start(self, timeout: float = 60.0) -> None:
        """`systemctl start`, then ready: the unit active (the api: /health answers 200). A
        simple unit is 'started' once forked, so a process that exits after (a port taken)
        shows as a restart or a failed unit; that is a refused start, with its journal."""
        if self._state()["ActiveState"] == "failed":  # a start limit hit would refuse it
            with contextlib.suppress(PrivilegeError):
                self.target.systemctl("reset-failed", self.unit)
        self._control("start")
        # read after the start: a manual start resets NRestarts, so only a rise from here
        # is the new process dying and systemd bringing it back
        started = int(self._state()["NRestarts"] or 0)
        health = f"{self.target.endpoints.api_url}/health" if self.name == "api" else None
        state: dict[str, str] = {}

        def ready() -> bool | None:
            nonlocal state
            state = self._state()
            if (
                state["ActiveState"] == "failed"
                or state["SubState"] == "auto-restart"
                or int(state["NRestarts"] or 0) > started
            ):
                raise ServiceError(
                    f"{self.unit} was started but its process exited ({state['ActiveState']}/"
                    f"{state['SubState']}); {self.target.journal_tail(self.unit)}"
                )
            return (
                state["ActiveState"] == "active" and (health is None or http_ok(health))
            ) or None

        if poll(ready, timeout, interval=0.2) is None:
            raise ServiceError(
                f"{self.unit} not ready within {timeout:.0f} s ({state['ActiveState']}/"
                f"{state['SubState']}); {self.target.journal_tail(self.unit)}"
            )

    def _state(self) -> dict[str, str]:
        out = self.target.run(
            ["systemctl", "show", "-p", "ActiveState", "-p", "SubState", "-p", "NRestarts",
             self.unit]
        ).stdout  # fmt: skip
        state = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
        return {k: state.get(k, "") for k in ("ActiveState", "SubState", "NRestarts")}
