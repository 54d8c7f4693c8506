"""Runbook §5.2.2 case 3: a forgotten transaction holds a lock on `runs`; requests queue.

Fixed the runbook's way: find the session at the head of the lock queue with
`pg_blocking_pids()` and terminate it.
"""

from __future__ import annotations

import random

import pytest

from opsdrill.drill.standard import StandardDrill
from opsdrill.faults import LockContention
from opsdrill.recovery.database import terminate_blocking_session
from opsdrill.targets.base import Target

pytestmark = [
    pytest.mark.destructive,
    pytest.mark.runbook("5.2.2"),
    pytest.mark.fault("lock_contention", table="runs", mode="ACCESS EXCLUSIVE"),
]


def test_lock_on_runs_is_found_and_the_blocker_terminated(
    target: Target,
    drill: StandardDrill,
    chaos_rng: random.Random,
) -> None:
    fault = LockContention(target, table="runs", mode="ACCESS EXCLUSIVE")
    # which user request shows the effect is a random choice (replay with --chaos-seed)
    effect = chaos_rng.choice(
        [drill.faults.request_hangs("/runs?limit=1"), drill.faults.forecast_hangs()]
    )
    print(f"lock-contention: effect probe chosen by seed: {effect.name}")
    spec = drill.spec(
        name="lock-contention",
        title="Lock on runs held by an idle transaction",
        severity="P1",
        fault=fault,
        effect=effect,
        detectors=[drill.faults.lock_waiters()],
        also_steady=[drill.faults.no_run_running()],
        recover=terminate_blocking_session(target),
    )
    result = drill.run(spec)
    blocker = fault.entry.undo["blocker_pid"]
    assert any(f"pid {blocker}" in a for a in result.actions), (
        f"the recovery must have terminated the fault's session (pid {blocker}): {result.actions}"
    )
