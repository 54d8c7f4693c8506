"""Redis, the forecast cache: does it answer? Target-neutral, so drills and procedures ask it."""

from __future__ import annotations

__all__ = ["ping"]


def ping(redis_url: str, timeout: float = 0.5) -> bool:
    """True when Redis answers PING within `timeout`."""
    import redis  # here: the client is needed only where the stack runs Redis

    try:
        client = redis.Redis.from_url(
            redis_url, socket_timeout=timeout, socket_connect_timeout=timeout
        )
        with client:
            return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
