"""Runbook §5.2.5 (slow API) and §5.2.2 (app ↔ database): real network faults via Toxiproxy.

The app reaches PostgreSQL through the Toxiproxy proxy `postgres`, and clients can reach the
API through `api`: a stack started with `opsdrill up --proxy` has them, and on one started
without, the `proxy_hops` fixture puts them in place for the session (the app restarts onto
the proxy) and takes them out at its end. Each drill measures the fault's effect against the
configured figure, not just its presence.
"""

from __future__ import annotations

import statistics
import time

import httpx
import psycopg
import pytest

from opsdrill.drill import Detector
from opsdrill.drill.standard import StandardDrill
from opsdrill.faults.network import Latency, ResetPeer
from opsdrill.load.pytest_gate import slo_threshold
from opsdrill.recovery.network import diagnose_network_latency, restart_network_hop
from opsdrill.targets.base import ProxyHops, Target

pytestmark = [pytest.mark.destructive]

DELAY_MS = 300
PREDICT = {"series_id": "airpassengers", "horizon": 12}


@pytest.fixture
def proxied(target: Target, proxy_hops: ProxyHops) -> Target:
    return target


def db_round_trip(dsn: str) -> float:
    """Seconds for one `SELECT 1` on an open autocommit connection: one network round trip."""
    with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as conn:
        conn.execute("SELECT 1")
        t0 = time.perf_counter()
        conn.execute("SELECT 1").fetchone()
        return time.perf_counter() - t0


def p95(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=20, method="inclusive")[-1]


def forecast_latencies(api_url: str, count: int = 8) -> list[float]:
    out = []
    for _ in range(count):
        t0 = time.perf_counter()
        httpx.post(f"{api_url}/predict", json=PREDICT, timeout=30).raise_for_status()
        out.append(time.perf_counter() - t0)
    return out


def health_latency(url: str) -> float:
    t0 = time.perf_counter()
    httpx.get(f"{url}/health", timeout=10)
    return time.perf_counter() - t0


@pytest.mark.runbook("5.2.5")
@pytest.mark.fault("net_latency", proxy="postgres", latency=300)
def test_db_latency_raises_forecast_p95(
    proxied: Target,
    proxy_hops: ProxyHops,
    drill: StandardDrill,
) -> None:
    target = proxied
    api, app_dsn = target.endpoints.api_url, proxy_hops.app_dsn
    base_rtt = min(db_round_trip(app_dsn) for _ in range(3))
    base_p95 = p95(forecast_latencies(api))
    seen: dict[str, float] = {}

    def delayed() -> bool:
        seen["rtt"] = db_round_trip(app_dsn)
        return seen["rtt"] - base_rtt >= 0.8 * DELAY_MS / 1000

    def slo_breached() -> bool:  # §2.3: prediction latency p95 < 500 ms
        seen["p95"] = p95(forecast_latencies(api, 3))
        return seen["p95"] > slo_threshold("prediction-latency")

    spec = drill.spec(
        name="db-latency",
        title=f"{DELAY_MS} ms latency between the app and PostgreSQL",
        severity="P2",
        fault=Latency(target, proxy="postgres", latency=DELAY_MS),
        effect=Detector("database round trip delayed", delayed, 10),
        detectors=[Detector("forecast p95 above the 500 ms SLO", slo_breached, 30)],
        # the standard steady state: Latency recovers_by_itself, the stack must ride it out
        recover=diagnose_network_latency(lambda: db_round_trip(app_dsn), base_rtt),
    )
    result = drill.run(spec, check=False)
    added = (seen["rtt"] - base_rtt) * 1000
    print(
        f"  DB round trip +{added:.0f} ms (configured {DELAY_MS}); forecast p95 "
        f"{base_p95 * 1000:.0f} ms -> {seen.get('p95', 0) * 1000:.0f} ms; "
        f"{result.failed_probes}/{result.total_probes} /health probes not 200"
    )
    drill.verify(result)
    assert 0.8 * DELAY_MS <= added <= 1.5 * DELAY_MS + 100, f"measured +{added:.0f} ms"
    assert seen["p95"] - base_p95 >= DELAY_MS / 1000 * 0.8


@pytest.mark.runbook("5.2.2")
@pytest.mark.fault("net_reset_peer", proxy="postgres")
def test_db_connection_reset_is_detected_and_recovered(
    proxied: Target,
    proxy_hops: ProxyHops,
    drill: StandardDrill,
) -> None:
    target = proxied
    api_pid = target.service("api").pid()

    def app_path_refused() -> bool:
        try:
            db_round_trip(proxy_hops.app_dsn)
        except psycopg.OperationalError:
            return True
        return False

    spec = drill.spec(
        name="db-connection-reset",
        title="Connections between the app and PostgreSQL reset",
        severity="P1",
        fault=ResetPeer(target, proxy="postgres", timeout=0),
        effect=Detector(
            "connections through the app's database path are reset", app_path_refused, 10
        ),
        detectors=[drill.probes.health_is(503, timeout=10)],
        recover=restart_network_hop(target),
        hold=2.0,
    )
    result = drill.run(spec)
    assert result.failed_probes > 0, "the availability probe never saw the outage"
    assert target.service("api").pid() == api_pid, "the app must recover without a restart"


@pytest.mark.runbook("5.2.5")
@pytest.mark.fault("net_latency", proxy="api", latency=300)
def test_client_to_api_latency_is_what_clients_see(
    proxied: Target,
    proxy_hops: ProxyHops,
    drill: StandardDrill,
) -> None:
    target = proxied
    front = proxy_hops.api_url
    base = min(health_latency(front) for _ in range(5))
    seen: dict[str, float] = {}

    def slow_for_clients() -> bool:
        seen["latency"] = min(health_latency(front) for _ in range(3))
        return seen["latency"] - base >= 0.8 * DELAY_MS / 1000

    spec = drill.spec(
        name="api-latency",
        title=f"{DELAY_MS} ms latency between clients and the API",
        severity="P3",
        fault=Latency(target, proxy="api", latency=DELAY_MS),
        effect=Detector("clients see the delay", slow_for_clients, 10),
        detectors=[
            Detector(
                "/health through the proxy slower than 250 ms",
                lambda: health_latency(front) > 0.25,
                10,
            )
        ],
        # Latency recovers_by_itself: clients get answers, only slower, while it lasts
        also_steady=[
            Detector(
                "/health answers through the proxy within 2 s",
                lambda: health_latency(front) < 2.0,
                10,
            ),
        ],
        availability_url=f"{front}/health",
        endpoints=None,  # as before: no integrity snapshot for a client-side delay
    )
    result = drill.run(spec, check=False)
    added = (seen["latency"] - base) * 1000
    print(f"  client-side /health +{added:.0f} ms (configured {DELAY_MS})")
    drill.verify(result)
    assert result.recovered_by.startswith("the stack itself"), result.recovered_by
    gone = Detector("the delay is gone", lambda: health_latency(front) - base < DELAY_MS / 2000)
    assert gone.wait(timeout=10) is not None, "the delay must be gone once the toxic is reverted"
    assert 0.8 * DELAY_MS <= added <= 1.5 * DELAY_MS + 100, f"measured +{added:.0f} ms"
