"""Runbook §5.3.1, service restart, without its defect.

Status; stop gracefully (30 s); kill what is left — by the pid file, after checking that the
pid still names this service's process, never by matching command lines (`pkill -f` would
also kill every other process whose arguments mention the app; `Target.clear_leftovers`);
remove the pid file and stale sockets; start; poll `/health` up to 30 times, 2 s apart; fail
loudly if it never answers.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from opsdrill.errors import ServiceError
from opsdrill.polling import poll
from opsdrill.probes.http import http_ok
from opsdrill.targets.base import Target

__all__ = ["app_pid_file", "restart_service"]


def app_pid_file(target: Target) -> Path:
    """Where the app writes its pid (Settings.pid_file), on the app's filesystem."""
    home = target.endpoints.home
    if home is None:
        raise ServiceError(f"target {target.name!r} names no data directory (NF_HOME)")
    return home / "run" / "app.pid"


def restart_service(
    target: Target,
    *,
    grace: float = 30.0,
    polls: int = 30,
    interval: float = 2.0,
    say: Callable[[str], None] = lambda _line: None,
) -> list[str]:
    """Restart the API the runbook's way; the actions taken, or ServiceError if it never heals."""
    api = target.service("api")
    actions = [f"§5.3.1 status: api pid {api.pid() or 'none'}, healthy={api.healthy()}"]
    api.stop(timeout=grace)
    actions.append(f"stopped gracefully (SIGTERM, up to {grace:g} s)")
    actions += target.clear_leftovers("api")
    api.start(timeout=polls * interval)
    health = f"{target.endpoints.api_url}/health"
    asked = 0

    def healthy() -> bool | None:
        nonlocal asked
        asked += 1
        return http_ok(health) or None

    if poll(healthy, (polls - 1) * interval, interval=interval) is not None:
        actions.append(f"started; /health answered 200 at poll {asked} (pid {api.pid()})")
        say(actions[-1])
        return actions
    raise ServiceError(
        f"§5.3.1: the app was started but {health} did not answer 200 in {polls} polls "
        f"{interval:g} s apart; read {target.endpoints.logs_dir}/error.log"
    )
