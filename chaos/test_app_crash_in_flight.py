"""Runbook §5.3.1 with work in progress: the app is SIGKILLed while training runs are in flight.

Workers run in sessions of their own, so a SIGKILL of the app leaves them training with no
executor to cancel or reap them. The restart (§5.3.1, by pid file) must deal with them before
it serves: when `/health` first answers after the restart, every run that was in flight already
reads `failed` with "worker lost at restart" (start-up orphan recovery, not the periodic sweep
minutes later), the old worker processes (held by pid + start time) are gone, and the same run
submitted again trains to completion.

`app_crash_in_flight_drill` builds and runs it, so opsdrill's own tests can run it against an
app started with NF_ORPHAN_RECOVERY_AT_START=0 and see it fail (tests/test_drill_paths_fail.py).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import pytest

from opsdrill.drill import Detector, DrillResult
from opsdrill.drill.procedure import procedure
from opsdrill.drill.standard import StandardDrill
from opsdrill.errors import FaultNotEffective
from opsdrill.faults import AppCrash, RunawayRuns
from opsdrill.recovery.service_restart import restart_service
from opsdrill.stack.runs import NextRun, RunsClient, Worker
from opsdrill.targets.base import Target

pytestmark = [
    pytest.mark.destructive,
    pytest.mark.runbook("5.3.1"),
    pytest.mark.fault("app_crash", sig="SIGKILL"),
]

LOST = "worker lost at restart"
TRAINING_RSS = 200 * 2**20  # past the torch import: the worker really trains


@dataclass
class InFlight:
    """The runs in flight when the app was killed, and what the restart did with them."""

    workers: dict[int, Worker]
    at_first_health: dict[int, dict[str, Any]] = field(default_factory=dict)

    def failed_at_start(self) -> bool:
        """Every run read failed, naming the lost worker, at the restart's first /health."""
        runs = [self.at_first_health.get(r) for r in self.workers]
        return bool(runs) and all(
            r is not None and r["status"] == "failed" and LOST in (r["error_message"] or "")
            for r in runs
        )

    def workers_gone(self) -> bool:
        return bool(self.workers) and not any(w.alive() for w in self.workers.values())


def start_runs_in_flight(client: RunsClient, fault: RunawayRuns, timeout: float = 180) -> InFlight:
    """Submit the runaway runs and wait until each worker trains; their workers."""
    fault.inject()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = {r: client.worker(r) for r in fault.run_ids}
        if all(w is not None and w.rss() > TRAINING_RSS for w in found.values()):
            return InFlight({r: w for r, w in found.items() if w is not None})
        time.sleep(0.25)
    raise FaultNotEffective(f"runs {fault.run_ids} were not all training after {timeout:.0f} s")


def restart_with_runs_in_flight(target: Target, client: RunsClient, flight: InFlight) -> list[str]:
    """§5.3.1 restart by pid file; then, at once, how the runs in flight read."""
    actions = restart_service(target)  # type: ignore[arg-type]
    for run_id in flight.workers:
        run = flight.at_first_health[run_id] = client.get(run_id)
        actions.append(f"at the first /health after the restart, run {run_id} was "
                       f"{run['status']}: {run['error_message']}")  # fmt: skip
    return actions


def app_crash_in_flight_drill(
    drill: StandardDrill,
) -> tuple[DrillResult, InFlight]:
    """Run the drill with two runs in flight; their own fault is reverted whatever happens."""
    target, probes, fault_probes = drill.target, drill.probes, drill.faults
    client = RunsClient(target)
    runaway = RunawayRuns(target, count=2, max_steps=5000)  # type: ignore[arg-type]
    try:
        flight = start_runs_in_flight(client, runaway)
        alerts, resolved = probes.alert_cycle("ServiceDown")
        paged, unpaged = probes.delivery_cycle("ServiceDown")
        lost = Detector(f"runs in flight read failed '{LOST}' at the first /health",
                        flight.failed_at_start, 1)  # fmt: skip
        spec = drill.spec(
            name="app-sigkill-in-flight",
            title="API process killed (SIGKILL) while training runs are in flight",
            severity="P0",
            fault=AppCrash(target, sig="SIGKILL"),  # type: ignore[arg-type]
            effect=fault_probes.api_silent(),
            detectors=[fault_probes.api_silent(timeout=5), *alerts, *paged],
            recover=procedure(
                "5.3.1",
                "restart the API service with runs in flight",
                (
                    "restart the app; orphaned runs failed at start-up",
                    lambda: restart_with_runs_in_flight(target, client, flight),
                ),
            ),
            resolved=[
                lost,
                Detector("the old workers are gone (pid + start time)", flight.workers_gone, 10),
                Detector(
                    "the run submitted again completes",
                    NextRun(client, "opsdrill-resubmitted").completed,
                    300,
                ),
                *resolved,
                *unpaged,
            ],
            dsn=target.endpoints.dsn,
        )
        return drill.run(spec, check=False), flight
    finally:
        runaway.revert()


def test_app_killed_with_runs_in_flight_fails_them_at_start_up(
    target: Target, drill: StandardDrill
) -> None:
    result, flight = app_crash_in_flight_drill(drill)
    for action in result.actions:
        print(f"  {action}")
    drill.verify(result)
    assert len(flight.workers) == 2
