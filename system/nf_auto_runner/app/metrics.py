"""Prometheus metrics: HTTP traffic (by route template), runs, and the database pool.

Run gauges are refreshed by the executor thread, never by a scrape, so /metrics answers
from memory even when the database hangs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from starlette.requests import Request
from starlette.responses import Response

__all__ = [
    "CONTENT_TYPE_LATEST",
    "observe_request",
    "render",
    "set_finished_runs",
    "set_pool_gauges",
    "set_run_gauges",
    "watch_predictor",
]

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0)

HTTP_REQUESTS = Counter(
    "http_requests_total",
    "HTTP requests by route template and status",
    ["method", "path", "status"],
)
IN_PROGRESS = Gauge("http_requests_in_progress", "HTTP requests being served now")
DURATION = Histogram(
    "http_request_duration_seconds", "HTTP request latency", ["method", "path"], buckets=BUCKETS
)
RUN_START = Gauge(
    "ts_forecast_run_start_time", "Start time of each running run (unix s)", ["run_id"]
)
QUEUED = Gauge("ts_forecast_queued_runs", "Runs with status scheduled")
ACTIVE = Gauge("ts_forecast_active_runs", "Runs with status running")
POOL_SIZE = Gauge("ts_forecast_db_pool_size", "Connections held by the pool")
POOL_AVAILABLE = Gauge("ts_forecast_db_pool_available", "Idle connections in the pool")
POOL_WAITING = Gauge("ts_forecast_db_pool_waiting", "Requests waiting for a connection")
POOL_MAX = Gauge("ts_forecast_db_pool_max", "Maximum connections (size + overflow)")
DB_UP = Gauge("ts_forecast_db_up", "1 when the last database probe succeeded")


class _PredictorMetrics:
    """The predictor's counters, read at scrape time (`ts_forecast_model_runs_total` is what
    a bench divides by forecasts sent: 1.0 means every forecast ran the model)."""

    def __init__(self) -> None:
        self.predictor: Any = None

    def collect(self):  # type: ignore[no-untyped-def]
        p = self.predictor
        if p is None:
            return
        for name, text, value in (
            ("ts_forecast_model_runs", "Forecasts computed by running a model", p.model_runs),
            ("ts_forecast_forward_passes", "Batched forward passes", p.forward_passes),
            ("ts_forecast_model_loads", "Models loaded into the cache", p.loads),
            ("ts_forecast_model_evictions", "Models evicted from the cache", p.evictions),
        ):
            yield CounterMetricFamily(name, text, value=value)
        yield GaugeMetricFamily(
            "ts_forecast_model_cache_entries", "Models held in the in-memory cache", p.cached_models
        )
        yield GaugeMetricFamily(
            "ts_forecast_model_cache_bytes", "Bytes of model weights in the cache", p.cached_bytes
        )
        yield GaugeMetricFamily(
            "ts_forecast_model_cache_max_bytes", "The cache's byte budget", p.cache_bytes
        )
        yield from _result_cache_families(p.results)


def _result_cache_families(cache: Any):  # type: ignore[no-untyped-def]
    """Forecast result cache lookups by backend (redis | memory) and outcome, and whether
    Redis is in use: the hit ratio is hits / (hits + misses)."""
    lookups = CounterMetricFamily(
        "ts_forecast_result_cache_lookups",
        "Forecast result cache lookups by backend and outcome",
        labels=["backend", "outcome"],
    )
    for backend in ("redis", "memory"):
        for outcome in ("hit", "miss"):
            lookups.add_metric([backend, outcome], cache.counts.get((backend, outcome), 0))
    yield lookups
    yield CounterMetricFamily(
        "ts_forecast_redis_errors", "Redis calls that failed (then cached in process)",
        value=cache.redis_errors,
    )  # fmt: skip
    if cache.redis_url:
        yield GaugeMetricFamily(
            "ts_forecast_redis_in_use", "1 while the shared Redis cache is in use",
            1 if cache.redis_in_use and cache.last_error is None else 0,
        )  # fmt: skip


PREDICTOR = _PredictorMetrics()
REGISTRY.register(PREDICTOR)


def watch_predictor(predictor: Any) -> None:
    PREDICTOR.predictor = predictor


_run_lock = threading.Lock()
_run_ids: set[str] = set()


def set_run_gauges(queued: int, running: dict[int, float]) -> None:
    """Replace the run gauges with the database's current view."""
    with _run_lock:
        QUEUED.set(queued)
        ACTIVE.set(len(running))
        now = {str(k) for k in running}
        for gone in _run_ids - now:
            RUN_START.remove(gone)
        for run_id, start in running.items():
            RUN_START.labels(run_id=str(run_id)).set(start)
        _run_ids.clear()
        _run_ids.update(now)


class _FinishedRuns:
    """`ts_forecast_runs_finished_total{status}`: the training-completion SLO's events.

    Runs finish in worker processes, so the count is the database's, refreshed with the run
    gauges; it drops only when old runs are archived, which rate() reads as a counter reset.
    """

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def collect(self):  # type: ignore[no-untyped-def]
        family = CounterMetricFamily(
            "ts_forecast_runs_finished",
            "Training runs that reached a final status",
            labels=["status"],
        )
        for status in ("completed", "failed", "cancelled"):
            family.add_metric([status], self.counts.get(status, 0))
        yield family


FINISHED = _FinishedRuns()
REGISTRY.register(FINISHED)


def set_finished_runs(counts: dict[str, int]) -> None:
    FINISHED.counts = dict(counts)


def set_pool_gauges(stats: dict[str, int], db_up: bool | None) -> None:
    POOL_SIZE.set(stats["size"])
    POOL_AVAILABLE.set(stats["available"])
    POOL_WAITING.set(stats["waiting"])
    POOL_MAX.set(stats["max"])
    if db_up is not None:
        DB_UP.set(1 if db_up else 0)


def render() -> bytes:
    return generate_latest()


def route_template(request: Request) -> str:
    """The matched route's template (bounded cardinality), never the raw URL."""
    route = request.scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "<unmatched>"


async def observe_request(
    request: Request,
    call_next: Callable[[Request], Awaitable[Response]],
    on_error: Callable[[Request, Exception], Response],
) -> Response:
    """Count, time and label one request; unexpected exceptions become on_error's answer."""
    IN_PROGRESS.inc()
    t0 = time.perf_counter()
    try:
        try:
            response = await call_next(request)
        except Exception as exc:
            response = on_error(request, exc)
        path = route_template(request)
        HTTP_REQUESTS.labels(request.method, path, str(response.status_code)).inc()
        DURATION.labels(request.method, path).observe(time.perf_counter() - t0)
        return response
    finally:
        IN_PROGRESS.dec()
