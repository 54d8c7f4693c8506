"""The app's forecast cache against a real redis-server: shared through Redis, in process
while Redis is down (no error reaches the caller), back in Redis once it answers again."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from opsdrill import ports
from opsdrill.targets.local import redis_service

pytest.importorskip("redis")
needs_redis = pytest.mark.skipif(
    not redis_service.installed(), reason="redis-server is not on PATH: apt install redis-server"
)

FORECAST = [{"ds": "1961-01-01T00:00:00", "value": 1.5}]


def _start(port: int, tmp: Path) -> subprocess.Popen[bytes]:
    spec = redis_service.spec(port, tmp / "redis")
    assert spec.before_start is not None
    spec.before_start()
    proc = subprocess.Popen(list(spec.argv), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while not spec.ready():
        assert time.monotonic() < deadline and proc.poll() is None, "redis-server did not start"
        time.sleep(0.05)
    return proc


@pytest.fixture
def redis_port(tmp_path: Path) -> Iterator[tuple[int, list[subprocess.Popen[bytes]]]]:
    port = ports.free_port()
    procs = [_start(port, tmp_path)]
    yield port, procs
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(5)


@needs_redis
def test_shared_then_fallback_then_back(
    redis_port: tuple[int, list[subprocess.Popen[bytes]]], tmp_path: Path
) -> None:
    from nf_auto_runner import result_cache
    from nf_auto_runner.result_cache import ResultCache

    port, procs = redis_port
    url = redis_service.url(port)
    one, two = (ResultCache(ttl=60, size=8, redis_url=url) for _ in range(2))
    one.put((1, "1960-12-01", 144), FORECAST)
    assert two.get((1, "1960-12-01", 144)) == FORECAST, "a second process must see the entry"
    assert two.status()["status"] == "ok"

    procs[0].send_signal(signal.SIGKILL)
    procs[0].wait(5)
    t0 = time.perf_counter()
    assert two.get((1, "1960-12-01", 144)) is None  # Redis gone: a miss, never an error
    two.put((2, "x", 1), FORECAST)
    assert two.get((2, "x", 1)) == FORECAST, "the in-process fallback must serve meanwhile"
    assert time.perf_counter() - t0 < 0.5, "the outage must not slow a lookup down"
    assert two.status()["status"] == "degraded" and two.redis_errors >= 1
    assert two.counts[("memory", "hit")] == 1

    procs.append(_start(port, tmp_path))
    time.sleep(result_cache.RETRY_SECONDS)  # the back-off after the last failure
    assert two.status()["status"] == "ok"
    two.put((3, "y", 1), FORECAST)
    assert one.get((3, "y", 1)) == FORECAST, "the shared cache must refill once Redis is back"


def test_without_redis_url_the_cache_is_in_process() -> None:
    from nf_auto_runner.result_cache import ResultCache

    cache = ResultCache(ttl=60, size=1, redis_url="")
    cache.put((1, "a", 1), FORECAST)
    cache.put((2, "b", 1), FORECAST)  # size 1: the first is evicted
    assert cache.get((1, "a", 1)) is None and cache.get((2, "b", 1)) == FORECAST
    assert cache.status()["status"] == "disabled"
