"""Runbook §5.3.1 (service restart) for the app, Redis and MLflow, and the /health
confirmation every procedure ends with.

Each builder returns a `Procedure` (runbook id, title, steps) over the Target interface; a
drill names one as its `recover`, and its steps are timed on the drill's timeline.
"""

from __future__ import annotations

from collections.abc import Callable

from opsdrill.drill.detector import Detector
from opsdrill.drill.procedure import Procedure, StepOutput, procedure
from opsdrill.errors import ServiceError, TargetUnreachable
from opsdrill.probes import redis as redis_probe
from opsdrill.probes.http import http_ok
from opsdrill.recovery.service_restart import restart_service
from opsdrill.recovery.tracking_backlog import pending_tracking
from opsdrill.stack.api import ApiClient
from opsdrill.targets.base import Target
from opsdrill.targets.model import public_url

__all__ = ["confirm_health", "restart_app", "restart_mlflow", "restart_redis"]


def confirm_health(target: Target, timeout: float = 60.0) -> Callable[[], StepOutput]:
    """The runbook's closing step: poll /health until 200, fail loudly at the deadline."""
    url = f"{target.endpoints.api_url}/health"

    def confirm() -> str:
        t0 = Detector("/health 200", lambda: http_ok(url)).wait(timeout=timeout)
        if t0 is None:
            raise ServiceError(f"{url} did not answer 200 within {timeout:g} s")
        return f"/health answers 200 ({url})"

    return confirm


def restart_app(target: Target, interval: float = 0.5) -> Procedure:
    """§5.3.1 service restart (stop, kill leftovers by pid file, clean up, start, /health)."""
    return procedure(
        "5.3.1",
        "service restart",
        ("stop, kill leftovers by pid file, remove pid file, start, poll /health",
         lambda: restart_service(target, polls=int(60 / interval), interval=interval)),
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
        seen = Detector("/health says Redis ok", lambda: _redis_ok(target.endpoints.api_url)).wait(
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


def _redis_ok(api_url: str) -> bool:
    try:
        resp = ApiClient(api_url).request("GET", "/health", timeout=2.0)
        redis = resp.json().get("components", {}).get("redis", {})
    except (TargetUnreachable, ValueError):
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
