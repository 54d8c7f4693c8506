"""Revert every fault the journal still holds: after a crash, before anything else runs."""

from __future__ import annotations

from collections.abc import Callable

from opsdrill.errors import RevertFailed
from opsdrill.faults.base import REGISTRY, Fault
from opsdrill.faults.journal import Journal
from opsdrill.targets.local import LocalTarget

__all__ = ["rollback"]


def rollback(target: LocalTarget, say: Callable[[str], None] = print) -> list[str]:
    """Revert journaled faults newest first; report every failure together at the end."""
    import opsdrill.faults  # noqa: F401  (registers every fault kind)

    reverted, failures = [], []
    for entry in reversed(Journal(target.state_dir).entries()):
        if entry.kind not in REGISTRY:
            failures.append(
                RevertFailed(f"journal entry {entry.fault_id}: unknown fault kind {entry.kind!r}")
            )
            continue
        fault = Fault.from_entry(target, entry)
        try:
            fault.revert()
        except RevertFailed as exc:
            failures.append(exc)
            continue
        say(f"reverted {fault.describe()} left by pid {entry.runner_pid} ({entry.phase})")
        reverted.append(fault.describe())
    if failures:
        raise RevertFailed("; ".join(str(f) for f in failures))
    return reverted
