"""Runbook §5.2.5: the API is slow because something else eats the CPU.

Real busy-loop processes (how many is a seeded random choice) where the app runs; detection
is measured forecast latency against a baseline taken just before. Recovery is §5.2.5's: find
the busy processes (top where the app runs: scoped to the stack's state directory on this
shared machine, to the app's user elsewhere) and kill them by pid; the steady state includes
forecast latency back near the baseline, so it cannot return while the hogs run.
"""

from __future__ import annotations

import os
import random

import pytest

from opsdrill.drill import Detector
from opsdrill.drill.standard import StandardDrill
from opsdrill.faults import CpuHog
from opsdrill.recovery.cpu_hogs import offenders
from opsdrill.recovery.host_resources import kill_cpu_hogs
from opsdrill.targets.base import Target

pytestmark = [pytest.mark.destructive, pytest.mark.runbook("5.2.5"), pytest.mark.fault("cpu_hog")]


def _burning(fault: CpuHog) -> bool:
    """The hogs have used CPU time: utime+stime of each, from /proc where they run."""
    return sum(ref.cpu_ticks() or 0 for ref in fault.refs()) > 0


def test_cpu_hog_slows_forecasts_and_stopping_it_restores_them(
    target: Target,
    drill: StandardDrill,
    chaos_rng: random.Random,
) -> None:
    cores = os.cpu_count() or 1
    count = chaos_rng.randint(2 * cores, 3 * cores)
    print(f"cpu-hog: {count} hogs (chosen by seed) on {cores} cores")
    baseline = drill.faults.forecast_latency(samples=5)
    fault = CpuHog(target, count=count, max_seconds=90)
    scope = target.process_scope  # the stack's own processes only, on a shared machine
    spec = drill.spec(
        name="cpu-hog",
        title="API slow: CPU taken by other processes",
        severity="P2",
        fault=fault,
        effect=Detector("the hogs burn CPU (/proc utime)", lambda: _burning(fault), 10),
        detectors=[drill.faults.slower_than(baseline)],
        also_steady=[
            drill.faults.no_run_running(),
            drill.faults.not_slower_than(baseline),
            Detector(
                "top: no process besides the stack's services busy (above 5% of a core)",
                lambda: not offenders(target, scope),
                15,
            ),
        ],
        recover=kill_cpu_hogs(target, within=scope),
    )
    result = drill.run(spec)
    assert not any(ref.alive() for ref in fault.refs()), "every hog must be gone"
    killed = " ".join(result.timeline.steps[1].actions)
    assert all(f"killed pid {ref.pid} " in killed for ref in fault.refs()), (
        f"the procedure must have found and killed every hog by pid: {killed}"
    )
