"""Fixtures for the drills: the standard detectors and steady state of the reference stack."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import ClassVar

import httpx
import pytest

from opsdrill.drill import Detector, DrillResult
from opsdrill.drill.alert_scale import alert_scaling
from opsdrill.errors import CapabilityMissing
from opsdrill.probes.alertmanager import delivered
from opsdrill.probes.prometheus import alert_state
from opsdrill.probes.sql import sql_ok
from opsdrill.targets.base import ProxyHops, Target


def _status(url: str) -> int:
    try:
        return httpx.get(url, timeout=1.0).status_code
    except httpx.HTTPError:
        return 0


#: why alert detectors are skipped on a target without Prometheus
NO_PROMETHEUS = "no Prometheus in this target"


def _never() -> bool:
    return False


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
        """The runbook's alert as a detector: kind "alert", with its `for:` scaling noted."""
        prom = self.target.endpoints.prometheus_url
        label = f"alert {name} {state or 'resolved'}"
        scaled = alert_scaling(self.target.state_home()).get(name)
        return Detector(label, lambda: alert_state(prom, name) == state, timeout,  # type: ignore[arg-type]
                        kind="alert", note=scaled.note() if scaled else "",
                        production_offset=scaled.offset if scaled else 0.0)  # fmt: skip

    def alert_cycle(
        self, name: str, timeout: float = 30.0
    ) -> tuple[list[Detector], list[Detector]]:
        """(detectors, resolved) for an alert that must fire, then resolve. Without
        Prometheus both are recorded as skipped, with the reason, on the drill's timeline, in
        its incident record and in the JUnit properties: the drill still runs on its other
        detectors, and the game day can count what it did not show."""
        if not self.has_prometheus:
            why = NO_PROMETHEUS
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


@pytest.fixture(scope="session")
def probes(target: Target) -> Probes:
    return Probes(target)


# -- parts the drills put in place themselves when the stack lacks them -------------------------

#: the data filesystem the disk-full drill gets on a stack started without one
DATA_FS_SIZE = "64m"


def _announcer(config: pytest.Config) -> Callable[[str], None]:
    """One line on the terminal (not captured): the session changes the stack's wiring."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")

    def say(line: str) -> None:
        if reporter is None or capture is None:
            print(f"opsdrill: {line}")
            return
        with capture.global_and_fixture_disabled():
            reporter.write_line(f"opsdrill: {line}")

    return say


@contextlib.contextmanager
def _drill_part(make: Callable[[], AbstractContextManager[object]]) -> Iterator[object]:
    """Enter what `make` builds for the session; a target that cannot provide it skips."""
    with contextlib.ExitStack() as stack:
        try:
            part = stack.enter_context(make())
        except CapabilityMissing as exc:
            pytest.skip(str(exc))
        yield part


@pytest.fixture(scope="session")
def proxy_hops(target: Target, request: pytest.FixtureRequest) -> Iterator[ProxyHops]:
    """Toxiproxy between app and database and before the API, put in place for the session
    when the stack was started without it, and taken out again at its end."""
    say = _announcer(request.config)
    with _drill_part(lambda: target.ensure_proxy(say)) as hops:
        assert isinstance(hops, ProxyHops)
        yield hops


@pytest.fixture(scope="session")
def data_fs(target: Target, request: pytest.FixtureRequest) -> Iterator[Path]:
    """The app's data directory on a size-limited filesystem for the session (put in place
    when the stack was started without one, and moved back at its end)."""
    say = _announcer(request.config)
    with _drill_part(lambda: target.ensure_data_fs(DATA_FS_SIZE, say)) as home:
        assert isinstance(home, Path)
        yield home


@pytest.fixture(scope="session")
def incident_dir(reports_dir: Path) -> Path:
    return reports_dir


AssertDrill = Callable[[DrillResult], None]


@pytest.fixture
def assert_drill(record_property: Callable[[str, object], None]) -> AssertDrill:
    """Assert a drill passed, print its figures, and attach MTTD/MTTR to the JUnit report."""

    def check(result: DrillResult) -> None:
        record_property("mttd_seconds", result.mttd)
        record_property("mttd_alert_seconds", result.mttd_alert)
        record_property("mttd_probe_seconds", result.mttd_probe)
        record_property("mttr_seconds", result.mttr)
        record_property("incident_record", str(result.record_path))
        record_property("skipped_detectors", "; ".join(result.skipped_detectors))
        print(
            f"{result.spec.name}: MTTD {result.mttd} s (alert {result.mttd_alert} s, at "
            f"production scale {result.mttd_alert_production} s; probe {result.mttd_probe} s), "
            f"MTTR {result.mttr} s by {result.recovered_by or 'nothing'}, "
            f"{result.failed_probes}/{result.total_probes} probes failed; {result.record_path}"
        )
        for skipped in result.skipped_detectors:
            print(f"  detector {skipped}")
        assert result.passed, "\n".join(result.errors) + f"\nincident record: {result.record_path}"
        if result.record_path is not None:
            text = result.record_path.read_text()
            missing = [s for s in INCIDENT_SECTIONS if s not in text]
            assert not missing, f"incident record lacks runbook §9 parts {missing}: {text[:300]}"

    return check


#: what runbook §9 says an incident record holds (ID and severity are in the header table)
INCIDENT_SECTIONS = ("# Incident INC-", "| severity |", "| detected |", "| resolved |",
                     "## Summary", "## Impact", "## Timeline", "## Root cause",
                     "## Actions taken")  # fmt: skip


# -- detectors for the fault drills (added; the ones above are unchanged) ----------------------


def _metric(url: str, name: str) -> float | None:
    """One unlabelled sample from the app's /metrics, or None when it does not answer."""
    try:
        text = httpx.get(f"{url}/metrics", timeout=1.0).text
    except httpx.HTTPError:
        return None
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def _latency(url: str, body: dict[str, object], timeout: float = 10.0) -> float:
    t0 = time.perf_counter()
    try:
        httpx.post(url, json=body, timeout=timeout)
    except httpx.HTTPError:
        return timeout
    return time.perf_counter() - t0


class FaultProbes:
    """Detectors the new drills need, in the runbook's diagnosis terms."""

    FORECAST: ClassVar[dict[str, object]] = {"series_id": "airpassengers", "horizon": 12}

    def __init__(self, target: Target) -> None:
        self.target = target
        self.api = target.endpoints.api_url
        self.admin = target.endpoints.admin_dsn or ""

    def api_silent(self, timeout: float = 10.0) -> Detector:
        return Detector("/health gets no answer", lambda: _status(f"{self.api}/health") == 0,
                        timeout)  # fmt: skip

    def db_refuses_app_role(self, timeout: float = 10.0) -> Detector:
        """A new connection as the app's role is refused: too many clients (SQLSTATE 53300)."""
        import psycopg

        from opsdrill.faults.pool_exhaustion import is_slot_refusal

        def check() -> bool:
            try:
                psycopg.connect(self.target.endpoints.dsn, connect_timeout=2).close()
            except psycopg.OperationalError as exc:
                return is_slot_refusal(exc)
            return False

        return Detector("PostgreSQL refuses new sessions: too many clients", check, timeout)

    def pool_probe_failing(self, timeout: float = 10.0) -> Detector:
        return Detector("/metrics: ts_forecast_db_up is 0 (the pool yields no connection)",
                        lambda: _metric(self.api, "ts_forecast_db_up") == 0.0,
                        timeout)  # fmt: skip

    def request_hangs(self, path: str, timeout: float = 10.0, wait: float = 2.0) -> Detector:
        def check() -> bool:
            try:
                httpx.get(f"{self.api}{path}", timeout=wait)
            except httpx.TimeoutException:
                return True
            return False

        return Detector(f"GET {path} gets no answer within {wait:g} s", check, timeout)

    def forecast_hangs(self, timeout: float = 10.0, wait: float = 2.0) -> Detector:
        def check() -> bool:
            return _latency(f"{self.api}/predict", self.FORECAST, wait) >= wait

        return Detector(f"a forecast gets no answer within {wait:g} s", check, timeout)

    def lock_waiters(self, timeout: float = 10.0) -> Detector:
        from opsdrill.recovery.blocking_sessions import waiting_sessions

        return Detector("pg_stat_activity: sessions wait on a lock (pg_blocking_pids)",
                        lambda: bool(waiting_sessions(self.admin)), timeout)  # fmt: skip

    def forecast_latency(self, samples: int = 3) -> float:
        """Median seconds of `samples` forecasts, for a baseline."""
        got = sorted(_latency(f"{self.api}/predict", self.FORECAST) for _ in range(samples))
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

    def no_run_running(self, timeout: float = 10.0) -> Detector:
        import psycopg

        def check() -> bool:
            with psycopg.connect(self.admin, autocommit=True, connect_timeout=2) as conn:
                row = conn.execute("SELECT count(*) FROM runs WHERE status = 'running'").fetchone()
            return row is not None and row[0] == 0

        return Detector("no run left 'running'", check, timeout)


@pytest.fixture(scope="session")
def fault_probes(target: Target) -> FaultProbes:
    return FaultProbes(target)
