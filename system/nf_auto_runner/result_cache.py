"""Computed forecasts, shared through Redis when `NF_REDIS_URL` is set, else in process.

Redis lets several API processes share one cache (runbook §6.2.2: a cache of computed results
with a TTL). It is a low-priority part (§2.1): when it stops answering, forecasts are cached
in this process instead and the app goes on serving. A failed call opens a short circuit
(`RETRY_SECONDS`) so an outage costs one connection attempt per second, not one per request;
the first call after it that succeeds puts Redis back in use, so the shared cache refills
without a restart. Keys expire after the TTL in Redis and in process alike.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import OrderedDict
from typing import Any

__all__ = ["ResultCache"]

log = logging.getLogger(__name__)

#: a Redis call slower than this is treated as Redis being down (it is on loopback)
SOCKET_TIMEOUT = float(os.environ.get("NF_REDIS_TIMEOUT_MS", "100")) / 1000.0
#: after a failure, Redis is not tried again for this long
RETRY_SECONDS = 1.0
KEY_PREFIX = "nf:forecast:"

Key = tuple[int, str, int]


class ResultCache:
    """get/put of forecasts by (run_id, last observation, points), with hit counters."""

    def __init__(self, *, ttl: float, size: int, redis_url: str | None = None) -> None:
        self.ttl, self.size = ttl, size
        self.redis_url = os.environ.get("NF_REDIS_URL", "") if redis_url is None else redis_url
        self._local: OrderedDict[Key, tuple[float, list[dict[str, Any]]]] = OrderedDict()
        self._lock = threading.Lock()
        self._client: Any = None
        self._down_until = 0.0
        self.last_error: str | None = None
        #: (backend, "hit" | "miss") -> count; backend is "redis" or "memory"
        self.counts: dict[tuple[str, str], int] = {}
        self.redis_errors = 0
        if self.redis_url:
            import redis

            self._client = redis.Redis.from_url(
                self.redis_url,
                socket_timeout=SOCKET_TIMEOUT,
                socket_connect_timeout=SOCKET_TIMEOUT,
                health_check_interval=0,
            )

    # -- state -----------------------------------------------------------------------------
    @property
    def redis_in_use(self) -> bool:
        """Configured and not in its back-off after a failure."""
        return self._client is not None and time.monotonic() >= self._down_until

    def _failed(self, exc: Exception) -> None:
        with self._lock:
            if self.last_error is None:
                log.warning("Redis at %s unavailable, caching in process: %s", self.redis_url, exc)
            self.last_error = f"{type(exc).__name__}: {exc}"
            self.redis_errors += 1
            self._down_until = time.monotonic() + RETRY_SECONDS

    def _succeeded(self) -> None:
        if self.last_error is not None:
            with self._lock:
                if self.last_error is not None:
                    log.warning("Redis at %s is back: the shared cache is used again",
                                self.redis_url)  # fmt: skip
                    self.last_error = None

    def _count(self, backend: str, outcome: str) -> None:
        with self._lock:
            self.counts[(backend, outcome)] = self.counts.get((backend, outcome), 0) + 1

    def status(self) -> dict[str, Any]:
        """/health's view: disabled, ok, or degraded (with why); always answers quickly."""
        if self._client is None:
            return {"status": "disabled", "detail": "NF_REDIS_URL is not set"}
        t0 = time.perf_counter()
        try:
            self._client.ping()
        except Exception as exc:  # any failure means the in-process fallback is serving
            self._failed(exc)
            return {
                "status": "degraded",
                "error": f"Redis unavailable ({type(exc).__name__}: {exc}); "
                "forecasts are cached in process meanwhile",
                "latency_ms": round((time.perf_counter() - t0) * 1000, 2),
            }
        self._succeeded()
        self._down_until = 0.0
        return {"status": "ok", "latency_ms": round((time.perf_counter() - t0) * 1000, 2)}

    # -- get / put -------------------------------------------------------------------------
    @staticmethod
    def _redis_key(key: Key) -> str:
        return f"{KEY_PREFIX}{key[0]}:{key[1]}:{key[2]}"

    def get(self, key: Key) -> list[dict[str, Any]] | None:
        if self.redis_in_use:
            try:
                raw = self._client.get(self._redis_key(key))
            except Exception as exc:
                self._failed(exc)
            else:
                self._succeeded()
                self._count("redis", "miss" if raw is None else "hit")
                return None if raw is None else json.loads(raw)
        with self._lock:
            hit = self._local.get(key)
            if hit is not None and time.monotonic() - hit[0] >= self.ttl:
                del self._local[key]
                hit = None
        self._count("memory", "miss" if hit is None else "hit")
        return None if hit is None else hit[1]

    def put(self, key: Key, value: list[dict[str, Any]]) -> None:
        if self.redis_in_use:
            try:
                self._client.set(self._redis_key(key), json.dumps(value, default=str),
                                 ex=max(1, int(self.ttl)))  # fmt: skip
            except Exception as exc:
                self._failed(exc)
            else:
                self._succeeded()
                return
        with self._lock:
            self._local[key] = (time.monotonic(), value)
            while len(self._local) > self.size:
                self._local.popitem(last=False)
