"""Runbook §5.2.3 fix 2: too many parallel runs hold memory; the newest running runs are cancelled.

The runbook's own note is the point of this drill: "marking a run cancelled in the database
only helps if the worker running it notices and stops". So a run is not counted as cancelled
because the API said so: its worker process (found by the pid the database records, held by
pid + start time) must be gone within WORKER_GONE_WITHIN seconds of the cancel, its resident
memory must be freed, the run must read `cancelled` with the operator's reason, and a next run
must train to completion in the freed slot.

The procedure is a plain function (`cancel_newest_running`), and the drill is built by
`cancel_running_drill`, so opsdrill's own tests can run it against a worker that cannot be
stopped and see it fail (tests/test_drill_paths_fail.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from opsdrill.drill import Detector, DrillResult
from opsdrill.drill.procedure import procedure as runbook_procedure
from opsdrill.drill.standard import StandardDrill
from opsdrill.faults import RunawayRuns
from opsdrill.stack.runs import NextRun, RunsClient, Worker
from opsdrill.targets.base import Target

pytestmark = [
    pytest.mark.destructive,
    pytest.mark.runbook("5.2.3"),
    pytest.mark.fault("runaway_runs", count=2, max_steps=5000),
]

#: the executor polls every 0.5 s, then SIGTERM, 1.5 s grace, SIGKILL, 1.5 s: 3.5 s, doubled
WORKER_GONE_WITHIN = 7.0
REASON = "runbook 5.2.3: too many parallel runs, cancelled to free memory"
#: a worker past its torch import holds this much; below it, training has not started
TRAINING_RSS = 200 * 2**20
MiB = 2**20


@dataclass
class Cancellation:
    """One run the procedure cancelled, and what happened to its worker."""

    worker: Worker
    rss_before: int
    gone_after: float | None = None  # seconds from the cancel request; None: still there


@dataclass
class CancelEvidence:
    cancellations: list[Cancellation] = field(default_factory=list)

    def workers_gone_in_time(self) -> bool:
        return bool(self.cancellations) and all(
            c.gone_after is not None and c.gone_after <= WORKER_GONE_WITHIN
            for c in self.cancellations
        )

    def memory_freed(self) -> bool:
        """Every cancelled worker held memory before and holds none now."""
        return bool(self.cancellations) and all(
            c.rss_before > 0 and c.worker.rss() == 0 for c in self.cancellations
        )


def cancel_newest_running(
    client: RunsClient, evidence: CancelEvidence, newest: int = 5, reason: str = REASON
) -> list[str]:
    """§5.2.3 fix 2 through the API: cancel the `newest` running runs, then wait (bounded)
    until each one's worker process is gone, timing it from its cancel request."""
    actions = []
    started: list[tuple[Cancellation, float]] = []
    for run in client.running()[:newest]:
        worker = Worker.find(client.target, run["run_id"], run.get("worker_pid"))
        if worker is None:
            actions.append(
                f"run {run['run_id']} is running but has no live worker where the app runs"
            )
            continue
        item = Cancellation(worker, worker.rss())
        t0 = time.monotonic()
        client.cancel(run["run_id"], reason)
        started.append((item, t0))
        evidence.cancellations.append(item)
        actions.append(f"§5.2.3 fix 2: cancelled run {run['run_id']} (worker pid {worker.pid}, "
                       f"{item.rss_before / MiB:.0f} MiB resident)")  # fmt: skip
    deadline = time.monotonic() + WORKER_GONE_WITHIN
    while any(c.gone_after is None for c, _ in started) and time.monotonic() < deadline:
        for item, t0 in started:
            if item.gone_after is None and not item.worker.alive():
                item.gone_after = round(time.monotonic() - t0, 3)
        time.sleep(0.02)
    for item, _ in started:
        fate = (f"gone {item.gone_after:.2f} s after the cancel" if item.gone_after is not None
                else f"STILL ALIVE {WORKER_GONE_WITHIN:g} s after the cancel")  # fmt: skip
        actions.append(f"worker pid {item.worker.pid} of run {item.worker.run_id}: {fate}")
    return actions


def cancel_running_drill(
    drill: StandardDrill,
    *,
    procedure: Callable[[RunsClient, CancelEvidence], list[str]] = cancel_newest_running,
    next_run_timeout: float = 300.0,
) -> tuple[DrillResult, CancelEvidence]:
    """Run the drill; `procedure` is the §5.2.3 fix (the meta-test wraps it)."""
    target, fault_probes = drill.target, drill.faults
    client = RunsClient(target)
    fault = RunawayRuns(target, count=2, max_steps=5000)  # type: ignore[arg-type]
    evidence = CancelEvidence()
    nxt = NextRun(client, "opsdrill-after-cancel")

    def training() -> bool:
        workers = [Worker.find(target, r, client.get(r).get("worker_pid")) for r in fault.run_ids]
        return bool(workers) and all(w is not None and w.rss() > TRAINING_RSS for w in workers)

    def held() -> bool:  # §5.2.3 diagnose: largest processes, running runs
        return sum(w.rss() for r in client.running() if (w := client.worker(r["run_id"]))) > 0

    def cancelled_with_reason() -> bool:
        runs = [client.get(c.worker.run_id) for c in evidence.cancellations]
        return bool(runs) and all(
            r["status"] == "cancelled" and REASON in (r["error_message"] or "") for r in runs
        )

    gone = f"each cancelled worker gone within {WORKER_GONE_WITHIN:g} s of its cancel"
    spec = drill.spec(
        name="cancel-running",
        title="Parallel training runs hold memory; the newest running runs are cancelled",
        severity="P2",
        fault=fault,
        effect=Detector(f"each runaway worker trains (> {TRAINING_RSS // MiB} MiB)", training, 180),
        # from injection: a run on Ray gets its worker after the driver connects and a Ray
        # worker process starts (15 s measured on a loaded 2-core machine)
        detectors=[Detector("§5.2.3 diagnose: running runs' workers hold memory", held, 30)],
        also_steady=[fault_probes.no_run_running()],
        recover=runbook_procedure(
            "5.2.3",
            "fix 2: cancel the newest running runs",
            ("cancel the newest running runs", lambda: procedure(client, evidence)),
        ),
        resolved=[
            Detector(gone, evidence.workers_gone_in_time, 1),
            Detector("each cancelled worker's resident memory freed", evidence.memory_freed, 1),
            Detector("each cancelled run reads 'cancelled' with the reason", cancelled_with_reason),
            Detector("the next run completes", nxt.completed, next_run_timeout),
        ],
        dsn=target.endpoints.dsn,
    )
    return drill.run(spec, check=False), evidence


def test_cancelling_running_runs_stops_their_workers_and_frees_memory(
    target: Target, drill: StandardDrill
) -> None:
    result, evidence = cancel_running_drill(drill)
    for action in result.actions:
        print(f"  {action}")
    drill.verify(result)
    assert len(evidence.cancellations) == 2, "both runaway runs were running and cancelled"
