"""The runbook-path drills fail when the path is broken (chaos/test_cancel_running.py, …).

Each drill function is run against the embedded stack with the path broken for real, and the
drill must end `passed=False` naming what it missed.

The app killed with runs in flight: the app is restarted with NF_ORPHAN_RECOVERY_AT_START=0,
the documented operator setting (a diagnostic instance next to a live app) that turns start-up
orphan recovery off. The runs must then not read failed at the first /health, and the orphaned
workers are still alive.

Alert delivery: the stack's receiver (the alert sink) is stopped; HighErrorRate still fires in
Prometheus, but the drill must fail because nobody was paged.

Cancelling a running run: an executor whose cancellation has no effect on the worker. A config
switch that disables cancellation would be a back door no operator has a use for, so the
worker is instead put in a FROZEN cgroup v1 freezer group right before the §5.2.3 procedure
cancels it: a frozen task runs no code, and the kernel defers even SIGKILL until it is thawed
(checked below), so the executor's SIGTERM and SIGKILL reach it and do nothing, as with an
executor that ignores the cancel. The API still answers "cancelled" and the database says so:
only the drill's process checks can tell.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from chaos.test_alerts_live import high_error_rate_drill
from chaos.test_app_crash_in_flight import LOST, app_crash_in_flight_drill
from chaos.test_cancel_running import (
    WORKER_GONE_WITHIN,
    CancelEvidence,
    cancel_newest_running,
    cancel_running_drill,
)
from opsdrill.drill.standard import StandardDrill
from opsdrill.faults.journal import Journal
from opsdrill.processes import pid_alive
from opsdrill.stack.runs import RunsClient
from opsdrill.targets.local import LocalTarget

pytestmark = pytest.mark.slow

FREEZER = Path("/sys/fs/cgroup/freezer")


class Freezer:
    """A cgroup v1 freezer group of our own; thawed and removed whatever happens."""

    def __init__(self, name: str) -> None:
        self.path = FREEZER / name
        self.path.mkdir(exist_ok=True)

    def freeze(self, pid: int) -> None:
        (self.path / "cgroup.procs").write_text(str(pid))
        (self.path / "freezer.state").write_text("FROZEN")

    def thaw(self) -> None:
        (self.path / "freezer.state").write_text("THAWED")

    def pids(self) -> list[int]:
        return [int(p) for p in (self.path / "cgroup.procs").read_text().split()]

    def remove(self, timeout: float = 15.0) -> None:
        """Thaw, move what is left out, rmdir: a task still exiting (SIGKILLed, thawed) keeps
        the group busy (EBUSY) for a moment, so this retries until the deadline."""
        self.thaw()
        parent = FREEZER / "cgroup.procs"
        deadline = time.monotonic() + timeout
        while True:
            for pid in self.pids():  # a thawed task still in the group is moved out
                with contextlib.suppress(OSError):
                    parent.write_text(str(pid))
            try:
                self.path.rmdir()
                return
            except OSError as exc:
                if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                    raise
            time.sleep(0.1)


@pytest.fixture
def freezer() -> Iterator[Freezer]:
    if os.geteuid() != 0 or not (FREEZER / "cgroup.procs").exists():
        pytest.skip("needs root and the cgroup v1 freezer (/sys/fs/cgroup/freezer)")
    group = Freezer(f"opsdrill-test-{os.getpid()}")
    try:
        yield group
    finally:
        group.remove()


def test_a_frozen_process_outlives_sigkill_until_thawed(freezer: Freezer) -> None:
    """The premise of the meta-test below, checked on this kernel."""
    import subprocess

    child = subprocess.Popen(["sleep", "60"])
    try:
        freezer.freeze(child.pid)
        os.kill(child.pid, signal.SIGKILL)
        with pytest.raises(subprocess.TimeoutExpired):
            child.wait(timeout=1.0)
        freezer.thaw()
        assert child.wait(timeout=5) == -signal.SIGKILL
    finally:
        child.kill()
        child.wait()


def test_cancel_drill_fails_when_the_worker_ignores_the_cancel(
    stack: LocalTarget, freezer: Freezer, tmp_path: Path
) -> None:
    frozen: list[int] = []

    def procedure_on_frozen_workers(client: RunsClient, evidence: CancelEvidence) -> list[str]:
        for run in client.running():
            if (worker := client.worker(run["run_id"])) is not None:
                freezer.freeze(worker.pid)
                frozen.append(worker.pid)
        return ["workers frozen (sabotage)", *cancel_newest_running(client, evidence)]

    try:
        result, evidence = cancel_running_drill(
            StandardDrill(stack, "5.2.3", tmp_path),
            procedure=procedure_on_frozen_workers, next_run_timeout=20,
        )  # fmt: skip
        assert frozen, "the sabotage froze the runaway workers"
        assert not result.passed
        assert any(
            f"each cancelled worker gone within {WORKER_GONE_WITHIN:g} s" in e
            for e in result.errors
        ), result.errors
        assert any("resident memory freed" in e for e in result.errors), result.errors
        assert any("STILL ALIVE" in a for a in result.actions), result.actions
        assert all(c.gone_after is None for c in evidence.cancellations)
        assert not any("reads 'cancelled'" in e for e in result.errors), (
            "the database did say cancelled: only the process checks could catch this"
        )
    finally:
        freezer.thaw()
    for pid in frozen:  # thawed, the deferred SIGKILL ends them
        assert _gone_within(pid, 10.0), f"worker {pid} still alive after thawing"
    assert Journal(stack.state_dir).entries() == []


def _gone_within(pid: int, timeout: float) -> bool:
    import time

    deadline = time.monotonic() + timeout
    while pid_alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def test_crash_drill_fails_without_start_up_orphan_recovery(
    stack: LocalTarget, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NF_ORPHAN_RECOVERY_AT_START", "0")  # the app the drill restarts
    try:
        result, flight = app_crash_in_flight_drill(StandardDrill(stack, "5.3.1", tmp_path))
        assert not result.passed
        assert any(f"runs in flight read failed '{LOST}'" in e for e in result.errors), (
            result.errors
        )
        assert any("the old workers are gone" in e for e in result.errors), result.errors
        statuses = {r["status"] for r in flight.at_first_health.values()}
        assert statuses == {"running"}, f"without recovery the runs stay running: {statuses}"
    finally:
        monkeypatch.delenv("NF_ORPHAN_RECOVERY_AT_START")
        stack.service("api").restart(timeout=120)  # recovery on again for the next tests
    for worker in flight.workers.values():  # cancelled by the drill's cleanup: they exit
        assert _gone_within(worker.pid, 15.0), f"worker {worker.pid} outlived the cleanup"
    assert Journal(stack.state_dir).entries() == []


def test_alert_drill_fails_when_the_page_is_not_delivered(
    stack: LocalTarget, tmp_path: Path
) -> None:
    if "alert_sink" not in stack.services or stack.endpoints.prometheus_url is None:
        pytest.skip("needs Prometheus, Alertmanager and the alert sink installed")
    sink = stack.service("alert_sink")
    sink.stop()
    try:
        result = high_error_rate_drill(StandardDrill(stack, "5.2.2", tmp_path), alert_timeout=20)
    finally:
        sink.start(timeout=30)
    assert not result.passed
    missed = " ".join(e for e in result.errors if e.startswith("not detected"))
    assert "alert HighErrorRate firing: delivered to the receiver" in missed, result.errors
    assert "alert HighErrorRate firing," not in missed + ",", "Prometheus itself saw it fire"
    assert result.timeline.first("detected") is not None
