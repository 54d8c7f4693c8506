"""Fixtures for the drills: the standard detectors and steady state of the reference stack."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from opsdrill.drill import Detector, DrillResult
from opsdrill.probes.prometheus import alert_state
from opsdrill.probes.sql import sql_ok
from opsdrill.targets.base import Target


def _status(url: str) -> int:
    try:
        return httpx.get(url, timeout=1.0).status_code
    except httpx.HTTPError:
        return 0


class Probes:
    """Named detectors built from the target's endpoints, so drills read like the runbook."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.api = target.endpoints.api_url

    def health_is(self, code: int, timeout: float = 10.0) -> Detector:
        return Detector(f"/health answers {code}", lambda: _status(f"{self.api}/health") == code,
                        timeout)  # fmt: skip

    def forecast_ok(self, timeout: float = 10.0) -> Detector:
        def check() -> bool:
            resp = httpx.post(f"{self.api}/predict", timeout=2.0,
                              json={"series_id": "airpassengers", "horizon": 12})  # fmt: skip
            return resp.status_code == 200

        return Detector("a forecast succeeds", check, timeout)

    def db_refuses(self, timeout: float = 5.0) -> Detector:
        dsn = self.target.endpoints.dsn
        return Detector("PostgreSQL refuses connections", lambda: not sql_ok(dsn), timeout)

    def alert(self, name: str, state: str | None = "firing", timeout: float = 30.0) -> Detector:
        prom = self.target.endpoints.prometheus_url
        label = f"alert {name} {state or 'resolved'}"
        return Detector(label, lambda: alert_state(prom, name) == state, timeout)  # type: ignore[arg-type]

    def steady(self) -> list[Detector]:
        return [self.health_is(200), self.forecast_ok()]

    @property
    def has_prometheus(self) -> bool:
        return self.target.endpoints.prometheus_url is not None


@pytest.fixture(scope="session")
def probes(target: Target) -> Probes:
    return Probes(target)


@pytest.fixture(scope="session")
def incident_dir(reports_dir: Path) -> Path:
    return reports_dir


AssertDrill = Callable[[DrillResult], None]


@pytest.fixture
def assert_drill(record_property: Callable[[str, object], None]) -> AssertDrill:
    """Assert a drill passed, print its figures, and attach MTTD/MTTR to the JUnit report."""

    def check(result: DrillResult) -> None:
        record_property("mttd_seconds", result.mttd)
        record_property("mttr_seconds", result.mttr)
        record_property("incident_record", str(result.record_path))
        print(
            f"{result.spec.name}: MTTD {result.mttd} s, MTTR {result.mttr} s, "
            f"{result.failed_probes}/{result.total_probes} probes failed; {result.record_path}"
        )
        assert result.passed, "\n".join(result.errors) + f"\nincident record: {result.record_path}"

    return check
