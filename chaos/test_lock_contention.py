"""Runbook §5.2.2 case 3: a forgotten transaction holds a lock on `runs`; requests queue.

Fixed the runbook's way: find the session at the head of the lock queue with
`pg_blocking_pids()` and terminate it.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from opsdrill.drill import DrillSpec, run_drill
from opsdrill.faults import LockContention
from opsdrill.recovery.procedures import terminate_blocking_session
from opsdrill.targets.base import Target

from .conftest import AssertDrill, FaultProbes, Probes

pytestmark = [
    pytest.mark.destructive,
    pytest.mark.runbook("5.2.2"),
    pytest.mark.fault("lock_contention", table="runs", mode="ACCESS EXCLUSIVE"),
]


def test_lock_on_runs_is_found_and_the_blocker_terminated(
    target: Target,
    probes: Probes,
    fault_probes: FaultProbes,
    incident_dir: Path,
    assert_drill: AssertDrill,
    chaos_rng: random.Random,
) -> None:
    fault = LockContention(target, table="runs", mode="ACCESS EXCLUSIVE")
    # which user request shows the effect is a random choice (replay with --chaos-seed)
    effect = chaos_rng.choice(
        [fault_probes.request_hangs("/runs?limit=1"), fault_probes.forecast_hangs()]
    )
    print(f"lock-contention: effect probe chosen by seed: {effect.name}")
    spec = DrillSpec(
        name="lock-contention",
        title="Lock on runs held by an idle transaction",
        runbook="5.2.2",
        severity="P1",
        fault=fault,
        effect=effect,
        detectors=[fault_probes.lock_waiters()],
        steady=[*probes.steady(), fault_probes.no_run_running()],
        recover=terminate_blocking_session(target),
        availability_url=f"{target.endpoints.api_url}/health",
        endpoints=target.endpoints,
    )
    result = run_drill(spec, incident_dir)
    assert_drill(result)
    blocker = fault.entry.undo["blocker_pid"]
    assert any(f"pid {blocker}" in a for a in result.actions), (
        f"the recovery must have terminated the fault's session (pid {blocker}): {result.actions}"
    )
