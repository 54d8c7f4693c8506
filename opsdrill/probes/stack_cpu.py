"""CPU used by the stack's own processes, for a host the stack shares with other work.

On the embedded stack the host also runs opsdrill, pytest and whatever else the machine does;
its total CPU says nothing about the stack. The runbook's CPU row then applies to the share of
the host's CPUs that the stack's processes (and their children: training workers, backends)
used over the window.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

import psutil

__all__ = ["stack_cpu_percent"]


def _tree(pids: Iterable[int]) -> dict[int, psutil.Process]:
    procs: dict[int, psutil.Process] = {}
    for pid in pids:
        try:
            root = psutil.Process(pid)
            for p in [root, *root.children(recursive=True)]:
                procs[p.pid] = p
        except psutil.NoSuchProcess:
            continue
    return procs


def _cpu_seconds(procs: dict[int, psutil.Process]) -> dict[int, float]:
    out = {}
    for pid, p in procs.items():
        try:
            t = p.cpu_times()
            out[pid] = t.user + t.system
        except psutil.NoSuchProcess:
            continue
    return out


def stack_cpu_percent(pids: Iterable[int], window: float = 1.0) -> float:
    """Percent of all CPUs the process trees rooted at `pids` used over `window` seconds."""
    procs = _tree(pids)
    before = _cpu_seconds(procs)
    t0 = time.monotonic()
    time.sleep(window)  # measuring a rate over a window, not waiting for a condition
    after = _cpu_seconds(procs)
    elapsed = time.monotonic() - t0
    used = sum(after[p] - before[p] for p in after if p in before)
    return 100.0 * used / (elapsed * (psutil.cpu_count() or 1))
