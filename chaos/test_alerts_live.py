"""Runbook §4.2's alerts that only a real condition fires: HighErrorRate, LongRunningJob,
QueueBacklog. Each drill makes the condition for real, sees the alert fire in Prometheus AND
delivered by Alertmanager to the stack's receiver (the alert sink), applies the runbook's fix,
and sees the alert resolve, in Prometheus and at the receiver.

The embedded stack runs the production rules 60x faster (README: `for: 5m` is 5 s, LongRunningJob's
2 h age is 120 s; `.opsdrill/monitoring/prometheus/shortened.json` lists each change), so
these take seconds to minutes, not hours. HighMemoryUsage (85 % of host memory) is not driven
here: see chaos/test_memory_alert.py.
"""

from __future__ import annotations

import signal

import httpx
import pytest

from opsdrill.drill import Detector, DrillResult
from opsdrill.drill.detectors import Probes
from opsdrill.drill.procedure import procedure
from opsdrill.drill.standard import StandardDrill
from opsdrill.faults import DbDown, RunawayRuns
from opsdrill.recovery.database import start_postgres
from opsdrill.stack.runs import RunsClient

pytestmark = [pytest.mark.destructive, pytest.mark.runbook("4.2")]

#: QueueBacklog fires above 50 queued runs; the embedded app trains MAX_PARALLEL_RUNS (2) at a
#: time, so this many runs leave more than 50 waiting for any MAX_PARALLEL_RUNS up to 5
BACKLOG_RUNS = 56


def _needs_monitoring(probes: Probes) -> None:
    if not probes.has_prometheus or "alert_sink" not in probes.target.services:
        pytest.skip("the alert drills need Prometheus, Alertmanager and the stack's alert sink")


def _alert_spec(
    probes: Probes, alert: str, timeout: float
) -> tuple[list[Detector], list[Detector]]:
    """(detectors, resolved): the alert in Prometheus and delivered, firing then resolved."""
    fired, cleared = probes.alert_cycle(alert, timeout)
    paged, unpaged = probes.delivery_cycle(alert, timeout + 30)
    return [*fired, *paged], [*cleared, *unpaged]


def _queued(api_url: str) -> float:
    text = httpx.get(f"{api_url}/metrics", timeout=2).text
    line = next(ln for ln in text.splitlines() if ln.startswith("ts_forecast_queued_runs "))
    return float(line.split()[1])


def cancel_runs(client: RunsClient, status: str, reason: str) -> list[str]:
    """Cancel every run with `status` through the API, newest first; the actions taken."""
    ids = [r["run_id"] for r in client.with_status(status)]
    done = [i for i in ids if client.cancel(i, reason) is not None]
    return [f"cancelled {len(done)} {status} run(s) {done[:5]}{'…' if len(done) > 5 else ''}: "
            f"{reason}"]  # fmt: skip


def high_error_rate_drill(drill: StandardDrill, alert_timeout: float = 60) -> DrillResult:
    """PostgreSQL killed: every request that needs it answers 503, so more than 10 % of the
    API's requests are 5xx (the availability probe's and Prometheus' own scrapes)."""
    target, probes = drill.target, drill.probes
    detectors, resolved = _alert_spec(probes, "HighErrorRate", alert_timeout)
    spec = drill.spec(
        name="alert-high-error-rate",
        title="HighErrorRate fires on real 5xx answers (PostgreSQL killed) and is delivered",
        runbook="5.2.2",
        severity="P1",
        fault=DbDown(target, sig="SIGKILL"),  # type: ignore[arg-type]
        effect=probes.health_is(503),
        detectors=detectors,
        recover=start_postgres(target),
        resolved=resolved,
    )  # the integrity snapshot reads the endpoints again: a restarted db container moves
    return drill.run(spec, check=False)


def long_running_job_drill(drill: StandardDrill) -> DrillResult:
    """One run stays `running` past LongRunningJob's age (2 h, 120 s here); §3.1.3: cancel it.

    What keeps a real run running for hours is a stuck worker, not a long one: a run of the
    API's 5000 NHITS steps ends within the 120 s on a quiet machine. So the drill stops the
    run's worker (SIGSTOP, by pid) once it trains: the run is running and nothing finishes
    it. The §3.1.3 cancel kills the worker (SIGKILL ends a stopped process too)."""
    target, probes, fault_probes = drill.target, drill.probes, drill.faults
    client = RunsClient(target)
    fault = RunawayRuns(target, count=1, max_steps=5000, model="NHITS")  # type: ignore[arg-type]
    detectors, resolved = _alert_spec(probes, "LongRunningJob", 240)

    def training() -> bool:  # the worker is there: stop it, so the run gets stuck
        workers = [w for r in fault.run_ids if (w := client.worker(r)) is not None]
        return bool(workers) and all(w.signal(signal.SIGSTOP) for w in workers)

    spec = drill.spec(
        name="alert-long-running-job",
        title="LongRunningJob fires on a run training past its age limit and is delivered",
        runbook="3.1.3",
        severity="P3",
        fault=fault,
        effect=Detector("the long run's worker trains, then is stuck (SIGSTOP)", training, 120),
        detectors=detectors,
        also_steady=[fault_probes.no_run_running()],
        recover=procedure(
            "3.1.3",
            "cancel the run stuck past 2 h",
            (
                "cancel the running run",
                lambda: cancel_runs(client, "running", "runbook 3.1.3: stuck past 2 h"),
            ),
        ),
        resolved=resolved,
        dsn=target.endpoints.dsn,
    )
    return drill.run(spec, check=False)


def queue_backlog_drill(drill: StandardDrill) -> DrillResult:
    """More runs than the slots can take: over 50 wait; §3.1.3: cancel the backlog."""
    target, probes, fault_probes = drill.target, drill.probes, drill.faults
    client = RunsClient(target)
    fault = RunawayRuns(target, count=BACKLOG_RUNS, max_steps=5000)  # type: ignore[arg-type]
    detectors, resolved = _alert_spec(probes, "QueueBacklog", 90)
    api = target.endpoints.api_url
    spec = drill.spec(
        name="alert-queue-backlog",
        title="QueueBacklog fires on more than 50 queued runs and is delivered",
        runbook="3.1.3",
        severity="P3",
        fault=fault,
        effect=Detector("/metrics: ts_forecast_queued_runs > 50", lambda: _queued(api) > 50, 60),
        detectors=detectors,
        also_steady=[fault_probes.no_run_running()],
        recover=procedure(
            "3.1.3",
            "clear the queue backlog",
            (
                "cancel the scheduled runs",
                lambda: cancel_runs(client, "scheduled", "runbook 3.1.3: queue backlog"),
            ),
            (
                "cancel the running runs",
                lambda: cancel_runs(client, "running", "runbook 3.1.3: queue backlog"),
            ),
        ),
        resolved=resolved,
        dsn=target.endpoints.dsn,
    )
    return drill.run(spec, check=False)


@pytest.mark.fault("db_down", sig="SIGKILL")
def test_high_error_rate_fires_on_real_5xx_and_is_delivered(drill: StandardDrill) -> None:
    _needs_monitoring(drill.probes)
    drill.verify(high_error_rate_drill(drill))


@pytest.mark.fault("runaway_runs", count=1, max_steps=5000, model="NHITS")
def test_long_running_job_fires_on_a_long_run_and_is_delivered(drill: StandardDrill) -> None:
    _needs_monitoring(drill.probes)
    drill.verify(long_running_job_drill(drill))


@pytest.mark.fault("runaway_runs", count=BACKLOG_RUNS, max_steps=5000)
def test_queue_backlog_fires_on_a_real_backlog_and_is_delivered(drill: StandardDrill) -> None:
    _needs_monitoring(drill.probes)
    drill.verify(queue_backlog_drill(drill))
