"""Runbook §5.3.1, service restart, without its defect.

Status; stop gracefully (30 s); kill what is left — by the pid file, after checking that the
pid still names this service's process, never by matching command lines (`pkill -f` would
also kill every other process whose arguments mention the app); remove the pid file and
stale sockets; start; poll `/health` up to 30 times, 2 s apart; fail loudly if it never answers.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

from opsdrill.errors import ServiceError
from opsdrill.probes.http import http_ok
from opsdrill.processes import ProcessRef
from opsdrill.targets.local import LocalTarget

__all__ = ["app_pid_file", "leftover_pid", "restart_service"]

APP_MODULE = b"nf_auto_runner.app.main"


def app_pid_file(target: LocalTarget) -> Path:
    """Where the app writes its pid (Settings.pid_file)."""
    return target.home / "run" / "app.pid"


def leftover_pid(pid_file: Path, home: Path) -> int | None:
    """The pid in the pid file, if that process is alive and is this home's app."""
    try:
        pid = int(pid_file.read_text().split()[0])
    except (FileNotFoundError, ValueError, IndexError):
        return None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        cwd = os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return None  # gone: the pid file is stale
    return pid if APP_MODULE in cmdline and Path(cwd) == home else None


def _stale_sockets(run_dir: Path) -> list[Path]:
    """Unix socket files in the run directory that no process listens on any more."""
    try:
        live = {line.split()[-1] for line in Path("/proc/net/unix").read_text().splitlines()[1:]}
    except OSError:
        return []
    return [p for p in run_dir.glob("*.sock") if p.is_socket() and str(p) not in live]


def restart_service(
    target: LocalTarget,
    *,
    grace: float = 30.0,
    polls: int = 30,
    interval: float = 2.0,
    say: Callable[[str], None] = lambda _line: None,
) -> list[str]:
    """Restart the API the runbook's way; the actions taken, or ServiceError if it never heals."""
    api, pid_file = target.service("api"), app_pid_file(target)
    actions = [f"§5.3.1 status: api pid {api.pid() or 'none'}, healthy={api.healthy()}"]
    api.stop(timeout=grace)
    actions.append(f"stopped gracefully (SIGTERM, up to {grace:g} s)")
    if (pid := leftover_pid(pid_file, target.home)) is not None:
        ref = ProcessRef.of(pid)
        if ref is not None and ref.signal(signal.SIGKILL):
            ref.wait_gone(10.0)
        actions.append(f"killed leftover pid {pid} from {pid_file}")
    if pid_file.exists():
        pid_file.unlink()
        actions.append(f"removed pid file {pid_file}")
    for sock in _stale_sockets(pid_file.parent):
        sock.unlink(missing_ok=True)
        actions.append(f"removed stale socket {sock}")
    api.start(timeout=polls * interval)
    health = f"{target.endpoints.api_url}/health"
    for attempt in range(1, polls + 1):
        if http_ok(health):
            actions.append(f"started; /health answered 200 at poll {attempt} (pid {api.pid()})")
            say(actions[-1])
            return actions
        time.sleep(interval)
    raise ServiceError(
        f"§5.3.1: the app was started but {health} did not answer 200 in {polls} polls "
        f"{interval:g} s apart; read {target.endpoints.logs_dir}/error.log"
    )
