"""A container's memory through the Engine API: its limit (lowered for a real kernel OOM kill,
set back by the revert), its use, and the OOM kills its cgroup counted.

Lowering is destructive and needs `--allow-destructive`; raising or lifting a limit is what a
revert does, so `opsdrill rollback` may do it without.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from opsdrill.errors import ServiceError
from opsdrill.polling import poll
from opsdrill.targets.docker.sdk import docker
from opsdrill.targets.model import MemoryUsage

__all__ = ["cgroup_oom_kills", "limit_of", "memory_of", "set_limit"]


def limit_of(container: Any, host_total: int) -> int | None:
    """The container's memory limit now; None when it has none (0, or the host's own total,
    which is how a lifted limit reads back: the engine keeps a 0 as "unchanged")."""
    container.reload()
    limit = int(container.attrs["HostConfig"].get("Memory") or 0)
    return None if limit == 0 or limit >= host_total else limit


def memory_of(container: Any, host_total: int, *, workers: bool = False) -> MemoryUsage:
    """Limit, peak (else current) use, current use and process count, from the engine's
    stats and top; `workers`: count only the training workers (the app shares the container)."""
    limit = limit_of(container, host_total)
    if not container.attrs["State"].get("Running"):
        return MemoryUsage(limit, 0, 0)
    stats = container.stats(stream=False).get("memory_stats") or {}
    used = int(stats.get("usage") or 0)
    peak = int(stats.get("max_usage") or used)
    rows = container.top().get("Processes") or []
    if workers:  # a reading of command lines, never a signal by name
        rows = [r for r in rows if any("nf_auto_runner.worker" in str(c) for c in r)]
    return MemoryUsage(limit, peak, len(rows), used)


def set_limit(container: Any, limit_bytes: int | None, host_total: int) -> None:
    """`docker update --memory` (swap included, so the kernel OOM-kills rather than swaps);
    None lifts it to the host's total. Retries while a container mid-exit refuses updates.

    The swap limit is always a number: given one above the current memory limit, runc writes
    it first, as cgroup v1 refuses a memory limit above the memory+swap one (EINVAL); with
    -1 (unlimited) the engine leaves swap as it was and raising the memory limit fails."""
    limit = host_total if limit_bytes is None else limit_bytes
    swap = 2 * host_total if limit_bytes is None else limit_bytes
    refused = ""

    def updated() -> bool | None:
        nonlocal refused
        try:
            container.update(mem_limit=limit, memswap_limit=swap)
            return True
        except docker.errors.APIError as exc:
            refused = str(exc.explanation)
            if "not running" in refused:  # a container restarting: again, for a while
                return None
            raise ServiceError(
                f"docker update --memory {limit} {container.name} failed: {refused}"
            ) from None

    if poll(updated, 15, interval=0.5) is None:
        raise ServiceError(f"docker update --memory {limit} {container.name} failed: {refused}")


def cgroup_oom_kills(container_id: str) -> int | None:
    """oom_kill from the container's memory cgroup on this machine, None when not found."""
    root = Path("/sys/fs/cgroup")
    candidates = [
        root / "memory" / "docker" / container_id / "memory.oom_control",
        root / "docker" / container_id / "memory.events",
        root / "system.slice" / f"docker-{container_id}.scope" / "memory.events",
    ]
    for path in candidates:
        with contextlib.suppress(OSError):
            for line in path.read_text().splitlines():
                name, _, value = line.partition(" ")
                if name == "oom_kill":
                    return int(value)
    return None
