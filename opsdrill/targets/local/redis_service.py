"""Redis in the embedded stack: the forecast result cache several API processes can share.

Debian's `redis-server` on a loopback port of its own, no persistence (a cache: a restart
empties it and the app refills it), with a `maxmemory` limit and LRU eviction so it can never
grow past what the check expects. On by default where the binary is installed; off with
`OPSDRILL_REDIS=0` or `opsdrill up --no-redis` (kept in the stack's options.json).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from opsdrill.probes.redis import ping
from opsdrill.targets.local.process_service import ProcessSpec

__all__ = ["BINARY", "ENV", "MAXMEMORY_BYTES", "installed", "ping", "spec", "url"]

BINARY = "redis-server"
ENV = "OPSDRILL_REDIS"
#: the cache's memory limit; the check fails when used memory reaches it
MAXMEMORY_BYTES = 64 * 2**20


def installed() -> bool:
    return shutil.which(BINARY) is not None


def url(port: int) -> str:
    return f"redis://127.0.0.1:{port}/0"


def spec(port: int, data_dir: Path) -> ProcessSpec:
    """redis-server in the foreground, loopback only, no RDB/AOF, LRU under maxmemory."""
    address = url(port)
    return ProcessSpec(
        argv=[shutil.which(BINARY) or BINARY, "--bind", "127.0.0.1", "--port", str(port),
              "--save", "", "--appendonly", "no", "--daemonize", "no",
              "--maxmemory", str(MAXMEMORY_BYTES), "--maxmemory-policy", "allkeys-lru",
              "--dir", str(data_dir), "--logfile", ""],
        ready=lambda: ping(address),
        url=address,
        port=port,
        before_start=lambda: data_dir.mkdir(parents=True, exist_ok=True),
    )  # fmt: skip
