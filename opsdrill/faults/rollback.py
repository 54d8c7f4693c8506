"""Revert every fault a dead runner left in the journal: after a crash, before anything else.

A fault whose runner still runs belongs to a drill in progress in another session (or an
xdist worker): it is left alone and named, and that drill reverts it itself.
"""

from __future__ import annotations

from collections.abc import Callable

import opsdrill.faults  # noqa: F401  (the package registers every fault kind)
from opsdrill.errors import CapabilityMissing, RevertFailed
from opsdrill.faults.base import REGISTRY, Fault
from opsdrill.faults.journal import Journal
from opsdrill.targets.base import Target

__all__ = ["rollback"]


def rollback(target: Target, say: Callable[[str], None] = print) -> list[str]:
    """Revert journaled faults newest first; report every failure together at the end."""
    try:
        journal = Journal(target.journal_dir)
    except CapabilityMissing:
        return []  # a target without a journal: no fault of ours can be left on it
    # undoing a journaled fault restores what a drill that was allowed changed, so it needs no
    # --allow-destructive of its own (a production target still refuses: it has no faults)
    allowed, target.allow_destructive = target.allow_destructive, True
    try:
        return _revert_all(target, journal, say)
    finally:
        target.allow_destructive = allowed


def _revert_all(target: Target, journal: Journal, say: Callable[[str], None]) -> list[str]:
    reverted, failures = [], []
    for entry in reversed(journal.entries()):
        if entry.runner_alive():
            params = ", ".join(f"{k}={v}" for k, v in entry.params.items())
            say(f"left alone: {entry.kind}({params}) belongs to pid {entry.runner_pid}, "
                "which is still running its drill")  # fmt: skip
            continue
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
