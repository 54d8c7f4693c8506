"""The standard detectors of the reference stack, named in the runbook's terms so drills read
like it: its health and forecast probes, its alerts and their delivery, and the symptoms the
fault drills look for (slots refused, lock waiters, hanging requests, latency)."""

from __future__ import annotations

import time
from typing import ClassVar

import psycopg

from opsdrill.drill.alert_scale import target_alert_scaling
from opsdrill.drill.detector import Detector
from opsdrill.faults.pool_exhaustion import is_slot_refusal
from opsdrill.probes.alertmanager import delivered
from opsdrill.probes.http import http_status
from opsdrill.probes.prometheus import alert_state
from opsdrill.probes.sql import sql_ok, waiting_sessions
from opsdrill.stack.api import ApiClient
from opsdrill.targets.base import Target

#: why alert detectors are skipped on a target without Prometheus
NO_PROMETHEUS = "no Prometheus in this target"


def _never() -> bool:
    return False


class Probes:
    """Named detectors built from the target's endpoints, so drills read like the runbook."""

    def __init__(self, target: Target) -> None:
        self.target = target

    @property
    def api(self) -> str:
        """The API's URL now: read at each ask, since a restarted container may be published
        on a new port (`DockerTarget.forget_endpoints`)."""
        return self.target.endpoints.api_url

    @property
    def client(self) -> ApiClient:
        """The API's client at its URL now (see `api`)."""
        return ApiClient(self.api)

    def health_is(self, code: int, timeout: float = 10.0) -> Detector:
        return Detector(f"/health answers {code}", lambda: self.client.status("/health") == code,
                        timeout)  # fmt: skip

    def forecast_ok(self, timeout: float = 10.0) -> Detector:
        def check() -> bool:
            body = {"series_id": "airpassengers", "horizon": 12}
            return self.client.status("/predict", timeout=2.0, body=body) == 200

        return Detector("a forecast succeeds", check, timeout)

    def db_refuses(self, timeout: float = 5.0) -> Detector:
        return Detector("PostgreSQL refuses connections",
                        lambda: not sql_ok(self.target.endpoints.dsn), timeout)  # fmt: skip

    def alert(self, name: str, state: str | None = "firing", timeout: float = 30.0) -> Detector:
        """The runbook's alert as a detector: kind "alert", with its `for:` scaling noted."""
        prom = self.target.endpoints.prometheus_url
        label = f"alert {name} {state or 'resolved'}"
        scaled = target_alert_scaling(self.target).get(name)
        return Detector(label, lambda: alert_state(prom, name) == state, timeout,  # type: ignore[arg-type]
                        kind="alert", note=scaled.note() if scaled else "",
                        production_offset=scaled.offset if scaled else 0.0)  # fmt: skip

    def alert_cycle(
        self, name: str, timeout: float = 30.0, *, unwatched: str | None = None
    ) -> tuple[list[Detector], list[Detector]]:
        """(detectors, resolved) for an alert that must fire, then resolve. Without
        Prometheus, or when the rule by design does not watch what the fault hits
        (`unwatched`: why), both are recorded as skipped, with the reason, on the drill's
        timeline, in its incident record and in the JUnit properties: the drill still runs on
        its other detectors, and the game day can count what it did not show."""
        if unwatched is not None or not self.has_prometheus:
            why = unwatched if unwatched is not None else NO_PROMETHEUS
            return [Detector(f"alert {name} firing", _never, timeout, skipped=why)], [
                Detector(f"alert {name} resolved", _never, timeout, skipped=why)
            ]
        return [self.alert(name, "firing", timeout)], [self.alert(name, None, timeout)]

    def delivered(self, name: str, state: str = "firing", timeout: float = 60.0) -> Detector:
        """Alertmanager delivered `name` in `state` to the stack's receiver (the alert sink),
        in a notification received after this detector was made."""
        sink, since = self.target.services["alert_sink"].url or "", time.time()
        return Detector(f"alert {name} {state}: delivered to the receiver",
                        lambda: delivered(sink, name, state, since), timeout)  # fmt: skip

    def delivery_cycle(self, name: str, timeout: float = 60.0) -> tuple[list[Detector], ...]:
        """(detectors, resolved) for an alert delivered firing, then resolved; recorded as
        skipped, with the reason, when the target runs no receiver of its own."""
        if "alert_sink" not in self.target.services:
            why = "skipped: this target runs no alert receiver of its own (alert_sink)"
            return [Detector(f"alert {name} {s}: delivered", _never, timeout, skipped=why)
                    for s in ("firing",)], [
                Detector(f"alert {name} resolved: delivered", _never, timeout, skipped=why)
            ]  # fmt: skip
        fired, resolved = (self.delivered(name, s, timeout) for s in ("firing", "resolved"))
        return [fired], [resolved]

    def steady(self) -> list[Detector]:
        return [self.health_is(200), self.forecast_ok()]

    @property
    def has_prometheus(self) -> bool:
        return self.target.endpoints.prometheus_url is not None


class FaultProbes:
    """Detectors the new drills need, in the runbook's diagnosis terms."""

    FORECAST: ClassVar[dict[str, object]] = {"series_id": "airpassengers", "horizon": 12}

    def __init__(self, target: Target) -> None:
        self.target = target

    @property
    def api(self) -> str:
        """The API's URL now (read at each ask, as `Probes.api`)."""
        return self.target.endpoints.api_url

    @property
    def client(self) -> ApiClient:
        """The API's client at its URL now (see `api`)."""
        return ApiClient(self.api)

    @property
    def admin(self) -> str:
        """The admin DSN now: a restarted database container may be published on a new port."""
        return self.target.endpoints.admin_dsn or ""

    def api_silent(self, timeout: float = 10.0) -> Detector:
        return Detector("/health gets no answer", lambda: self.client.status("/health") is None,
                        timeout)  # fmt: skip

    def db_refuses_app_role(self, timeout: float = 10.0) -> Detector:
        """A new connection as the app's role is refused: too many clients (SQLSTATE 53300)."""

        def check() -> bool:
            try:
                psycopg.connect(self.target.endpoints.dsn, connect_timeout=2).close()
            except psycopg.OperationalError as exc:
                return is_slot_refusal(exc)
            return False

        return Detector("PostgreSQL refuses new sessions: too many clients", check, timeout)

    def pool_probe_failing(self, timeout: float = 10.0) -> Detector:
        return Detector("/metrics: ts_forecast_db_up is 0 (the pool yields no connection)",
                        lambda: self.client.metric("ts_forecast_db_up") == 0.0,
                        timeout)  # fmt: skip

    def request_hangs(self, path: str, timeout: float = 10.0, wait: float = 2.0) -> Detector:
        def check() -> bool:
            return not self.client.answers(path, timeout=wait)

        return Detector(f"GET {path} gets no answer within {wait:g} s", check, timeout)

    def forecast_hangs(self, timeout: float = 10.0, wait: float = 2.0) -> Detector:
        def check() -> bool:
            return self.client.elapsed("/predict", self.FORECAST, timeout=wait) >= wait

        return Detector(f"a forecast gets no answer within {wait:g} s", check, timeout)

    def lock_waiters(self, timeout: float = 10.0) -> Detector:
        return Detector("pg_stat_activity: sessions wait on a lock (pg_blocking_pids)",
                        lambda: bool(waiting_sessions(self.admin)), timeout)  # fmt: skip

    def forecast_latency(self, samples: int = 3) -> float:
        """Median seconds of `samples` forecasts, for a baseline."""
        got = sorted(self.client.elapsed("/predict", self.FORECAST) for _ in range(samples))
        return got[len(got) // 2]

    def slower_than(self, baseline: float, factor: float = 1.5, timeout: float = 20.0) -> Detector:
        floor = max(baseline * factor, baseline + 0.02)
        return Detector(f"forecast latency above {floor * 1000:.0f} ms (baseline "
                        f"{baseline * 1000:.0f} ms)",
                        lambda: self.forecast_latency() > floor, timeout)  # fmt: skip

    def not_slower_than(
        self, baseline: float, factor: float = 1.5, timeout: float = 20.0
    ) -> Detector:
        """Forecast latency back near its baseline: the steady state of a slow-API drill."""
        ceiling = max(baseline * factor, baseline + 0.05)
        return Detector(f"forecast latency at most {ceiling * 1000:.0f} ms (baseline "
                        f"{baseline * 1000:.0f} ms)",
                        lambda: self.forecast_latency() <= ceiling, timeout)  # fmt: skip

    def mlflow_answers(self, timeout: float = 10.0) -> Detector:
        health = f"{self.target.endpoints.mlflow_url}/health"
        return Detector("MLflow /health answers 200", lambda: http_status(health) == 200, timeout)

    def mlflow_silent(self, timeout: float = 10.0) -> Detector:
        health = f"{self.target.endpoints.mlflow_url}/health"
        return Detector(
            "MLflow /health gets no answer", lambda: http_status(health) is None, timeout
        )

    def no_run_running(self, timeout: float = 10.0) -> Detector:
        def check() -> bool:
            with psycopg.connect(self.admin, autocommit=True, connect_timeout=2) as conn:
                row = conn.execute("SELECT count(*) FROM runs WHERE status = 'running'").fetchone()
            return row is not None and row[0] == 0

        return Detector("no run left 'running'", check, timeout)
