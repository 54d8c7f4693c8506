"""Which runbook procedure recovers which incident, step by step, as drills run them.

Each builder returns a `Procedure` (runbook id, title, steps) over the Target interface; the
mechanics live in the modules named for them (service_restart, idle_sessions, cpu_hogs, ...).
A drill names one of these as its `recover`; its steps are timed on the drill's timeline.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

import httpx

from opsdrill.drill.detector import Detector
from opsdrill.drill.procedure import Procedure, StepOutput, procedure
from opsdrill.errors import ServiceError, UsageError
from opsdrill.probes import redis as redis_probe
from opsdrill.probes.http import http_ok
from opsdrill.probes.sql import sql_ok, waiting_sessions
from opsdrill.recovery.blocking_sessions import terminate_blockers
from opsdrill.recovery.cpu_hogs import OFFENDER_SHARE, CpuUser, kill_offenders, top_cpu
from opsdrill.recovery.db_recovery import recover_database
from opsdrill.recovery.disk_cleanup import clean_up
from opsdrill.recovery.gpu_memory import confirm_lowered, lower_gpu_settings
from opsdrill.recovery.idle_sessions import connections_by_state, terminate_idle
from opsdrill.recovery.port_owner import listeners
from opsdrill.recovery.runs_cancel import cancel_newest_running, running_runs
from opsdrill.recovery.service_restart import restart_service
from opsdrill.recovery.tracking_backlog import pending_tracking
from opsdrill.targets.base import Target
from opsdrill.targets.model import ExecResult, public_url
from opsdrill.targets.service_process import ServiceProcess

__all__ = [
    "clean_disk",
    "correct_config",
    "diagnose_database",
    "diagnose_network_latency",
    "free_port",
    "kill_cpu_hogs",
    "lower_gpu_memory",
    "relieve_host_memory",
    "restart_app",
    "restart_mlflow",
    "restart_network_hop",
    "restart_redis",
    "restore_database",
    "start_postgres",
    "terminate_blocking_session",
    "terminate_idle_sessions",
]


def _confirm_health(target: Target, timeout: float = 60.0) -> Callable[[], StepOutput]:
    """The runbook's closing step: poll /health until 200, fail loudly at the deadline."""
    url = f"{target.endpoints.api_url}/health"

    def confirm() -> str:
        t0 = Detector("/health 200", lambda: http_ok(url)).wait(timeout=timeout)
        if t0 is None:
            raise ServiceError(f"{url} did not answer 200 within {timeout:g} s")
        return f"/health answers 200 ({url})"

    return confirm


def _db_status(target: Target) -> str:
    db = target.service("db")
    works = "works" if sql_ok(target.endpoints.dsn) else "fails"
    return f"PostgreSQL running={db.is_running()} (pid {db.pid() or 'none'}); SELECT 1 {works}"


def start_postgres(target: Target, confirm_timeout: float = 60.0) -> Procedure:
    """§5.2.2 fix 1, for "PostgreSQL is not running" (the postmaster was killed)."""
    db = target.service("db")

    def start() -> str:
        db.start(timeout=120)
        return f"PostgreSQL started (pid {db.pid()})"

    return procedure(
        "5.2.2",
        "fix 1: start PostgreSQL",
        ("diagnose: is PostgreSQL up, SELECT 1", lambda: _db_status(target)),
        ("start PostgreSQL", start),
        ("confirm /health", _confirm_health(target, confirm_timeout)),
    )


def diagnose_database(target: Target) -> Procedure:
    """§5.2.2 diagnosis only: for a restart the database is back by itself; nothing to fix
    unless the diagnosis finds PostgreSQL down or the pool exhausted. The DSN is read when
    the step runs: a restarted database container may be published on a new port."""

    def admin() -> str:
        return target.endpoints.admin_dsn or target.endpoints.dsn

    return procedure(
        "5.2.2",
        "diagnose: database connection errors",
        ("is PostgreSQL up, SELECT 1", lambda: _db_status(target)),
        ("connections by state (pg_stat_activity)",
         lambda: f"client sessions by state {connections_by_state(admin())}"),
        ("confirm /health", _confirm_health(target)),
    )  # fmt: skip


def restart_network_hop(target: Target, hop: str = "proxy") -> Procedure:
    """§5.2.2 when PostgreSQL is up but the app's connections to it are reset: the fault is
    on the path, so the hop between them is restarted the §5.3.1 way, then /health confirmed."""
    service = target.service(hop)

    def restart() -> str:
        service.restart(timeout=60)
        return f"{hop} restarted (pid {service.pid()})"

    return procedure(
        "5.2.2",
        f"connections reset on the path to PostgreSQL: restart the {hop} (§5.3.1)",
        ("diagnose: is PostgreSQL up, SELECT 1 (direct)", lambda: _db_status(target)),
        (f"restart the network hop ({hop})", restart),
        ("confirm /health", _confirm_health(target)),
    )


def diagnose_network_latency(measure: Callable[[], float], baseline: float) -> Procedure:
    """§5.2.5 diagnosis of a slow API whose cause is latency to the database: nothing in the
    stack to fix, so the drill checks the stack rides it out."""

    def rtt() -> str:
        return (
            f"app → database round trip {measure() * 1000:.0f} ms (baseline "
            f"{baseline * 1000:.1f} ms): the network, not a slow statement"
        )

    return procedure("5.2.5", "diagnose: network latency to the database", ("round trip", rtt))


def kill_cpu_hogs(
    target: Target, within: Path | None, threshold: float = OFFENDER_SHARE
) -> Procedure:
    """§5.2.5 "CPU": find the busy processes (top) where the app runs, kill the offenders by
    pid."""
    found: list[CpuUser] = []

    def top() -> list[str]:
        found[:] = top_cpu(target, within)
        return [f"top: {', '.join(f'pid {u.pid} {u.cpu:.0%}' for u in found[:8]) or 'nothing'}"]

    return procedure(
        "5.2.5",
        "CPU taken by other processes: find them (top) and kill them by pid",
        ("diagnose: CPU by process (top)", top),
        ("kill the offending processes by pid",
         lambda: kill_offenders(target, found, threshold)),
        ("confirm /health", _confirm_health(target)),
    )  # fmt: skip


def relieve_host_memory(target: Target, count: int = 5) -> Procedure:
    """§5.2.3 host out of memory: diagnose the running runs, cancel the newest (fix 2)."""
    admin = target.endpoints.admin_dsn or target.endpoints.dsn

    def diagnose() -> str:
        runs = running_runs(admin)
        return f"running runs: {', '.join(str(r) for r, _ in runs) or 'none'}"

    def cancel() -> str:
        ids = cancel_newest_running(admin, count)
        return f"marked cancelled: {', '.join(map(str, ids)) or 'none running'}"

    return procedure(
        "5.2.3",
        "out of memory: cancel the newest running runs",
        ("diagnose: running runs", diagnose),
        (f"fix 2: mark the {count} newest running runs cancelled", cancel),
        ("confirm /health", _confirm_health(target)),
    )


def terminate_idle_sessions(target: Target, idle_for: float = 3600.0) -> Procedure:
    """§5.2.2 fix 2: the pool is exhausted by idle sessions."""
    admin = target.endpoints.admin_dsn or ""
    return procedure(
        "5.2.2",
        "fix 2: terminate idle sessions",
        ("diagnose: connections by state",
         lambda: f"client sessions by state {connections_by_state(admin)}"),
        (f"terminate sessions idle for more than {idle_for:g} s",
         lambda: terminate_idle(admin, idle_for=idle_for)),
        ("confirm /health", _confirm_health(target)),
    )  # fmt: skip


def terminate_blocking_session(target: Target) -> Procedure:
    """§5.2.2 fix 3: lock contention; the session at the head of the queue is terminated."""
    admin = target.endpoints.admin_dsn or ""
    return procedure(
        "5.2.2",
        "fix 3: terminate the blocking session",
        ("diagnose: sessions waiting on locks",
         lambda: f"waiting session -> blockers: {waiting_sessions(admin)}"),
        ("terminate the blocking session", lambda: terminate_blockers(admin)),
        ("confirm /health", _confirm_health(target)),
    )  # fmt: skip


def restart_app(target: Target, interval: float = 0.5) -> Procedure:
    """§5.3.1 service restart (stop, kill leftovers by pid file, clean up, start, /health)."""
    return procedure(
        "5.3.1",
        "service restart",
        ("stop, kill leftovers by pid file, remove pid file, start, poll /health",
         lambda: restart_service(target, polls=int(60 / interval), interval=interval)),
    )  # fmt: skip


def correct_config(
    target: Target,
    check: Callable[[], ExecResult],
    broken: PurePosixPath | str,
    keep: Path,
) -> Procedure:
    """§5.2.1: --check-config names the file; it is moved aside (kept here, on the machine
    running opsdrill, with the incident), checked, restarted."""

    def diagnose() -> str:
        done = check()
        return f"--check-config: {done.stderr.strip() or done.stdout.strip()}"

    def move_aside() -> str:
        files = target.files("api")
        keep.parent.mkdir(parents=True, exist_ok=True)
        keep.write_text(files.read_text(broken))
        files.remove(broken)
        done = check()
        return f"broken file moved to {keep}; --check-config now: " + (
            done.stdout.strip() or done.stderr.strip()
        )

    return procedure(
        "5.2.1",
        "correct the config, restart",
        ("diagnose: --check-config", diagnose),
        ("correct the config (move the broken file aside)", move_aside),
        ("restart (§5.3.1)", lambda: restart_service(target, polls=120, interval=0.5)),
    )


def free_port(target: Target, port: int) -> Procedure:
    """§5.2.1 "is the port taken": the holder found by socket inode where the app binds its
    port, stopped by pid there (SIGTERM, then SIGKILL after 5 s; start time checked)."""
    where = target.socket_service("api")

    def diagnose() -> list[str]:
        return [f"port {port} held by pid {p}: {cmd}" for p, _, cmd in listeners(target, port)]

    def stop_holders() -> list[str]:
        actions = []
        for pid, ticks, _ in listeners(target, port):
            holder = ServiceProcess(target, where, pid, ticks)
            if holder.signal(signal.SIGTERM) and not holder.wait_gone(5.0):
                holder.kill()
            actions.append(f"stopped pid {pid} (by pid, start time checked)")
        return actions

    return procedure(
        "5.2.1",
        "free the port, restart",
        ("diagnose: who listens on the port (/proc inode)", diagnose),
        ("stop the holder by pid", stop_holders),
        ("restart (§5.3.1)", lambda: restart_service(target, polls=120, interval=0.5)),
    )


def clean_disk(target: Target, data_dir: PurePosixPath | str | None = None) -> Procedure:
    """§5.2.4 disk full: diagnose, delete old logs, models and temp files, confirm; where
    the app runs, with df on `data_dir` (the filesystem that filled; NF_HOME by default)."""
    home = target.endpoints.home
    if home is None:
        raise UsageError(f"target {target.name!r} names no data directory (NF_HOME)")

    def clean() -> list[str]:
        return clean_up(lambda argv: target.exec("api", argv), PurePosixPath(home),
                        data_dir=data_dir).actions  # fmt: skip

    return procedure("5.2.4", "disk full: clean up",
                     ("diagnose, delete what is old, confirm free space", clean))  # fmt: skip


def restore_database(target: Target) -> Procedure:
    """§5.3.2 database recovery from the newest backup, a safety dump first."""
    return procedure(
        "5.3.2",
        "database recovery",
        ("newest backup, safety dump, stop app, recreate, restore, ANALYZE, start, /health",
         lambda: recover_database(target)),
    )  # fmt: skip


def lower_gpu_memory(target: Target, read: Callable[[], tuple[Any, Path]]) -> Procedure:
    """§5.2.3 fix 3 (GPU): diagnose GPU memory, lower GPU_MEMORY_LIMIT and MAX_PARALLEL_RUNS
    where the app reads them, restart, confirm the lower values are in effect. `read` returns
    the app's effective settings (gpu_memory.effective_settings with the app's environment)."""
    before: list[Any] = []

    def diagnose() -> str:
        if shutil.which("nvidia-smi") is None:
            return "nvidia-smi not installed: GPU memory by process not available"
        done = subprocess.run(
            ["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        return "GPU memory by process: " + (done.stdout.strip().replace("\n", "; ") or "none")

    def lower() -> list[str]:
        settings, actions = lower_gpu_settings(read)
        before[:] = [settings]
        return actions

    return procedure(
        "5.2.3",
        "fix 3: GPU out of memory",
        ("diagnose: GPU memory, largest processes", diagnose),
        ("empty the CUDA cache",
         lambda: "the API holds no CUDA context; each run trains in its own worker process, "
                 "whose CUDA cache is freed when it exits"),
        ("lower GPU_MEMORY_LIMIT and MAX_PARALLEL_RUNS", lower),
        ("restart (§5.3.1)", lambda: restart_service(target, polls=120, interval=0.5)),
        ("confirm the lower settings are in effect", lambda: confirm_lowered(before[0], read()[0])),
    )  # fmt: skip


def restart_redis(target: Target, confirm_timeout: float = 30.0) -> Procedure:
    """§5.3.1-style restart of Redis, the forecast cache (§2.1, low priority): start it by the
    service's own record (never by name), then confirm the app uses it again via /health."""
    redis = target.service("redis")
    url = redis.url or ""

    def status() -> str:
        answers = "answers" if redis_probe.ping(url) else "does not answer"
        return f"Redis running={redis.is_running()} (pid {redis.pid() or 'none'}); PING {answers}"

    def start() -> str:
        redis.start(timeout=30)
        return f"Redis started (pid {redis.pid()}, {public_url(url)})"

    def confirm() -> str:
        health = f"{target.endpoints.api_url}/health"
        seen = Detector("/health says Redis ok", lambda: _redis_ok(health)).wait(
            timeout=confirm_timeout
        )
        if seen is None:
            raise ServiceError(f"{health} did not report Redis ok within {confirm_timeout:g} s")
        return f"/health answers 200 with Redis ok ({health})"

    return procedure(
        "5.3.1",
        "restart Redis (the forecast cache)",
        ("diagnose: is Redis up, PING", status),
        ("start Redis", start),
        ("confirm /health reports Redis ok", confirm),
    )


def _redis_ok(health_url: str) -> bool:
    try:
        resp = httpx.get(health_url, timeout=2.0)
        redis = resp.json().get("components", {}).get("redis", {})
    except (httpx.HTTPError, ValueError):
        return False
    return resp.status_code == 200 and redis.get("status") == "ok"


def restart_mlflow(target: Target, catch_up_timeout: float = 120.0) -> Procedure:
    """§5.3.1 for the MLflow server: status, start it (leftovers by pid), poll its /health;
    then confirm the runs it missed were caught up (nf_auto_runner.tracking's sweep)."""
    mlflow = target.service("mlflow")
    url = f"{target.endpoints.mlflow_url}/health"
    admin = target.endpoints.admin_dsn or target.endpoints.dsn

    def status() -> str:
        return (f"MLflow running={mlflow.is_running()} (pid {mlflow.pid() or 'none'}); "
                f"/health {'answers' if http_ok(url) else 'gets no answer'}; "
                f"{pending_tracking(admin)} completed run(s) wait for tracking")  # fmt: skip

    def start() -> str:
        mlflow.restart(timeout=120)
        return f"MLflow started (pid {mlflow.pid()})"

    def confirm() -> str:
        if Detector("MLflow /health 200", lambda: http_ok(url)).wait(timeout=60) is None:
            raise ServiceError(f"{url} did not answer 200 within 60 s")
        return f"MLflow /health answers 200 ({url})"

    def caught_up() -> str:
        done = Detector("no run waits for tracking", lambda: pending_tracking(admin) == 0)
        if done.wait(timeout=catch_up_timeout) is None:
            raise ServiceError(
                f"{pending_tracking(admin)} completed run(s) still wait for MLflow after "
                f"{catch_up_timeout:g} s; see logs/app/tracking.log"
            )
        return "every completed run is tracked in MLflow again"

    return procedure(
        "5.3.1",
        "restart the MLflow server; tracking caught up",
        ("show status", status),
        ("restart MLflow (stop leftovers by pid, start)", start),
        ("poll MLflow /health", confirm),
        ("confirm pending runs were caught up", caught_up),
    )
