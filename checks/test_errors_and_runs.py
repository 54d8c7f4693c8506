"""Runbook §3.1.2 (error logs), §3.1.3 (run status) and §4.3 (log analysis), with limits.

The runbook lists these figures; a check needs a limit, so each compares with a row of
`opsdrill.runbook.thresholds` (its source is named in the failure message).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest

from opsdrill.runbook import queries
from opsdrill.runbook.thresholds import evaluate
from opsdrill.targets.base import Target

pytestmark = pytest.mark.readonly

LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)[,.]\d+ (CRITICAL|ERROR) ")


@pytest.mark.runbook("3.1.2")
def test_error_log_has_no_critical_in_the_last_hour(machine: Target) -> None:
    host = machine.testinfra_host()
    if machine.endpoints.logs_dir is None:
        pytest.skip(f"target {machine.name!r} names no logs_dir")
    log = host.file(f"{machine.endpoints.logs_dir}/error.log")
    assert log.exists, (
        f"{log.path} does not exist (expected the app's ERROR+ log); fix: check the app's "
        "logging configuration and that it can write to its logs directory"
    )
    tail = host.run(f"tail -n 100 {log.path}").stdout.splitlines()
    now = datetime.fromisoformat(host.run("date '+%Y-%m-%d %H:%M:%S'").stdout.strip())
    critical = [
        line for line in tail
        if (m := LOG_LINE.match(line)) and m[2] == "CRITICAL"
        and datetime.fromisoformat(m[1]) > now - timedelta(hours=1)
    ]  # fmt: skip
    assert not critical, (
        f"{len(critical)} CRITICAL line(s) in the last hour of {log.path} (expected none), "
        f"newest: {critical[-1][:300]}; fix: runbook 3.1.2, then the incident procedure it names"
    )


@pytest.mark.runbook("3.1.2")
def test_error_rows_in_the_last_hour_below_threshold(read) -> None:
    rows = read(queries.ERRORS_LAST_HOUR)
    verdict = evaluate("errors_1h", len(rows), "system_logs")
    newest = "; ".join(f"{r['created_at']:%H:%M:%S} {r['log_level']} run {r['run_id']}: "
                       f"{r['log_message'][:120]}" for r in rows[:3])  # fmt: skip
    assert not verdict.level.fails, f"{verdict.message}. Newest: {newest}"


@pytest.mark.runbook("3.1.3")
def test_running_runs_are_not_long_running(read) -> None:
    running = read(queries.RUNNING_RUNS)
    longest = max(running, key=lambda r: r["duration_seconds"] or 0, default=None)
    if longest is None:
        return
    subject = (f"run {longest['run_id']} ({longest['run_name']}, experiment "
               f"{longest['experiment_name']})")  # fmt: skip
    assert longest["start_time"] is not None, f"{subject} is running without a start_time"
    verdict = evaluate("run_duration", longest["duration_seconds"], subject)
    assert not verdict.level.fails, verdict.message


@pytest.mark.runbook("3.1.3")
def test_queue_depth_below_threshold(read) -> None:
    queue = read(queries.QUEUE)[0]
    verdict = evaluate("queued_runs", queue["queued"], "runs with status scheduled")
    assert not verdict.level.fails, verdict.message


@pytest.mark.runbook("3.1.3")
def test_oldest_queued_run_is_recent(read) -> None:
    queue = read(queries.QUEUE)[0]
    verdict = evaluate("oldest_queued_age", queue["oldest_age_seconds"],
                       f"queued since {queue['oldest']}")  # fmt: skip
    assert not verdict.level.fails, verdict.message


@pytest.mark.runbook("4.3")
def test_no_exception_type_dominates_the_errors(read) -> None:
    by_type = read(queries.ERRORS_BY_EXCEPTION_TYPE_24H)
    bad = [
        f"{evaluate('errors_per_type_24h', r['n'], r['exception_type']).message}; "
        f"samples: {' | '.join(s[:100] for s in r['samples'])}"
        for r in by_type
        if evaluate("errors_per_type_24h", r["n"]).level.fails
    ]
    assert not bad, "; ".join(bad)


@pytest.mark.runbook("4.3")
def test_completed_runs_have_consistent_durations(read) -> None:
    """A completed run without a duration, or ending before it started, skews every report."""
    rows = read(queries.COMPLETED_RUN_DURATIONS)
    bad = [
        f"run {r['run_id']}: start {r['start_time']}, end {r['end_time']}, "
        f"execution_duration_seconds {r['execution_duration_seconds']}"
        for r in rows
        if r["end_time"] is None or r["start_time"] is None
        or r["execution_duration_seconds"] is None or r["wall_seconds"] < 0
        or r["execution_duration_seconds"] > r["wall_seconds"] + 5
    ]  # fmt: skip
    assert not bad, (
        f"{len(bad)} completed run(s) with missing or impossible durations (expected end >= "
        f"start and a duration within the wall time): {'; '.join(bad[:5])}; fix: the executor "
        "must set start_time, end_time and execution_duration_seconds when a run completes"
    )


@pytest.mark.runbook("4.3")
def test_slowest_completed_runs_within_the_long_running_limit(read) -> None:
    """The ten slowest completed runs of 7 days: the slowest must not have needed longer than
    the LongRunningJob alert allows (2 h), or training has become too slow (runbook 12)."""
    slowest = read(queries.SLOWEST_COMPLETED_RUNS_7D)
    if not slowest:
        return
    top = slowest[0]
    seconds = top["execution_duration_seconds"]
    assert seconds is not None, f"completed run {top['run_id']} has no execution duration"
    verdict = evaluate("run_duration", float(seconds), f"completed run {top['run_id']} "
                       f"({top['run_name']}, {top['model_name']})")  # fmt: skip
    assert not verdict.level.fails, (
        f"{verdict.message}; the slowest of 7 days: "
        + ", ".join(f"run {r['run_id']} {float(r['execution_duration_seconds'] or 0):.0f} s"
                    for r in slowest[:5])
        + "; fix: fewer parallel runs or more resources (runbook 6.2.1, 12)"
    )  # fmt: skip


@pytest.mark.runbook("4.3")
def test_training_times_fit_inside_their_runs(read) -> None:
    """Training time per model (30 days) is a figure only if each is positive and no longer
    than the run that trained it."""
    bad = [
        f"model {r['model_id']} ({r['model_name']}, run {r['run_id']}): training "
        f"{r['training_duration_seconds']} s, run {r['execution_duration_seconds']} s"
        for r in read(queries.MODEL_TRAINING_30D)
        if r["training_duration_seconds"] is None or r["training_duration_seconds"] <= 0
        or (r["execution_duration_seconds"] is not None
            and r["training_duration_seconds"] > r["execution_duration_seconds"] + 1)
    ]  # fmt: skip
    assert not bad, (
        f"{len(bad)} model(s) with a missing or impossible training time (expected 0 < "
        f"training <= the run's duration): {'; '.join(bad[:5])}; fix: the trainer must record "
        "training_duration_seconds of the fit it timed"
    )
