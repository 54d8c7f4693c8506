"""Runbook §6.2.2 (a Redis cache of computed results): Redis answers, stays below its memory
limit, and the cache's hit ratio is reported.

Redis is low priority (§2.1) and optional: a stack without it skips these with the reason.
The hit ratio is reported, not judged (a quiet stack has no lookups): it is printed, recorded
as a property of the test (JUnit XML), and must be consistent with Redis's own counters.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from opsdrill.probes.metrics_text import AppMetrics, parse
from opsdrill.targets.base import Target

pytestmark = [pytest.mark.readonly, pytest.mark.runbook("6.2.2")]

#: used memory above this share of maxmemory means the cache is evicting to stay in bounds
MEMORY_HEADROOM = 0.9


@pytest.fixture(scope="module")
def redis_client(target: Target) -> Iterator[Any]:
    if "redis" not in target.services:
        pytest.skip(
            f"target {target.name!r} has no Redis service: the embedded stack runs one where "
            "redis-server is installed; a target file names it under [services.redis]"
        )
    url = target.service("redis").url
    assert url, "the redis service has no URL"
    import redis

    client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    yield client
    client.close()


def test_redis_answers(redis_client: Any, target: Target) -> None:
    url = target.service("redis").url
    try:
        pong = redis_client.ping()
    except Exception as exc:
        pytest.fail(
            f"Redis at {url} does not answer PING ({exc}); fix: restart it (opsdrill up "
            "starts it again); forecasts are cached in process meanwhile"
        )
    assert pong is True


def test_app_uses_redis(redis_client: Any, api: httpx.Client) -> None:
    body = api.get("/health").json()
    redis_part = body["components"].get("redis")
    assert redis_part is not None, "/health does not report Redis: is the app older than the cache?"
    assert redis_part["status"] == "ok", (
        f"the app does not use Redis: /health says {redis_part}; fix: check NF_REDIS_URL and "
        "that Redis answers on it"
    )


def test_memory_below_limit(redis_client: Any, target: Target) -> None:
    memory = redis_client.info("memory")
    used, limit = int(memory["used_memory"]), int(memory["maxmemory"])
    assert limit > 0, (
        f"Redis at {target.service('redis').url} has no maxmemory: a cache without a limit "
        "grows until the host runs out; fix: set maxmemory and an LRU eviction policy"
    )
    assert used < MEMORY_HEADROOM * limit, (
        f"Redis uses {used / 2**20:.1f} MiB of its {limit / 2**20:.0f} MiB limit (more than "
        f"{MEMORY_HEADROOM:.0%}): it is evicting forecasts to stay in bounds; fix: raise "
        "maxmemory or shorten the TTL"
    )
    policy = redis_client.config_get("maxmemory-policy")["maxmemory-policy"]
    assert policy.endswith("lru") or policy.endswith("lfu"), (
        f"maxmemory-policy is {policy!r}: at the limit writes fail instead of old forecasts "
        "being evicted; fix: CONFIG SET maxmemory-policy allkeys-lru"
    )


def test_hit_ratio_reported(
    redis_client: Any,
    api: httpx.Client,
    app_metrics: AppMetrics,
    record_property: Callable[[str, object], None],
) -> None:
    """The same forecast twice: the second is a hit, and both sides count it."""
    before = _lookups(app_metrics)
    stats_before = redis_client.info("stats")
    for _ in range(2):
        resp = api.get("/forecast/airpassengers", params={"horizon": 12})
        assert resp.status_code == 200, f"/forecast answered {resp.status_code}: {resp.text}"
    after = _lookups(parse(api.get("/metrics").text))
    stats = redis_client.info("stats")
    hits = after[("redis", "hit")] - before[("redis", "hit")]
    assert hits >= 1, (
        f"two identical forecasts made {hits} Redis hits (app counters {after}): the "
        "result cache is not shared through Redis"
    )
    assert stats["keyspace_hits"] - stats_before["keyspace_hits"] >= hits
    total_hits = after[("redis", "hit")]
    total = total_hits + after[("redis", "miss")]
    ratio = total_hits / total
    server = stats["keyspace_hits"] / max(1, stats["keyspace_hits"] + stats["keyspace_misses"])
    record_property("redis_hit_ratio_app", round(ratio, 4))
    record_property("redis_hit_ratio_server", round(server, 4))
    print(f"forecast cache hit ratio: {ratio:.1%} of {total:.0f} app lookups "
          f"(Redis keyspace: {server:.1%})")  # fmt: skip


def _lookups(metrics: AppMetrics) -> dict[tuple[str, str], float]:
    name = "ts_forecast_result_cache_lookups_total"
    assert name in metrics.samples, f"/metrics has no {name}: the app does not report its cache"
    return {
        (b, o): metrics.total(name, backend=b, outcome=o)
        for b in ("redis", "memory")
        for o in ("hit", "miss")
    }
