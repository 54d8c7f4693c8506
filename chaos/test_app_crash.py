"""Runbook §5.2.1 / §5.3.1: the API process is SIGKILLed; restarted the runbook's way.

The restart goes by the pid file (never `pkill -f`), removes the stale pid file the killed
process left (or the target shows none was left: a container's run directory on a tmpfs goes
with its stop), and polls `/health`. ServiceDown must fire and then resolve. Afterwards the pid
file, read where the app runs, names a live app process started after the kill.
"""

from __future__ import annotations

import os

import pytest

from opsdrill.drill.standard import StandardDrill
from opsdrill.faults import AppCrash
from opsdrill.processes import stat_start_ticks
from opsdrill.recovery.service_restart import app_pid_file
from opsdrill.recovery.services import restart_app
from opsdrill.targets.base import Target
from opsdrill.targets.files import ServiceFiles

pytestmark = [
    pytest.mark.destructive,
    pytest.mark.runbook("5.3.1"),
    pytest.mark.fault("app_crash", sig="SIGKILL"),
]


def test_app_sigkill_is_detected_and_restarted_by_pid_file(
    target: Target,
    drill: StandardDrill,
) -> None:
    old_pid = target.service("api").pid()
    files = target.files("api")
    before_kill = _uptime_ticks(files)
    alerts, resolved = drill.probes.alert_cycle("ServiceDown")
    spec = drill.spec(
        name="app-sigkill",
        title="API process killed (SIGKILL)",
        severity="P0",
        fault=AppCrash(target, sig="SIGKILL"),
        effect=drill.faults.api_silent(),
        detectors=[drill.faults.api_silent(timeout=5), *alerts],
        also_steady=[drill.faults.no_run_running()],
        resolved=resolved,
        recover=restart_app(target),
    )
    result = drill.run(spec)
    new_pid = target.service("api").pid()
    assert new_pid not in (None, old_pid)
    assert any("removed pid file" in a or "no pid file left" in a for a in result.actions), (
        f"the stale pid file was neither removed nor shown gone: {result.actions}"
    )
    named = int(files.read_text(app_pid_file(target)).strip())
    if target.host_spec == "local://":  # the app's pids are this machine's
        assert named == new_pid, f"pid file names {named}, the app runs as {new_pid}"
    cmdline = files.read_text(f"/proc/{named}/cmdline")
    assert "nf_auto_runner.app.main" in cmdline, f"pid file names {named}: {cmdline!r}"
    started = stat_start_ticks(files.read_text(f"/proc/{named}/stat"))
    assert started is not None and started > before_kill, (
        f"the pid file names {named}, a process older than the kill: it is stale"
    )


def _uptime_ticks(files: ServiceFiles) -> int:
    """Clock ticks since boot where the app runs (its kernel's /proc/uptime)."""
    return int(float(files.read_text("/proc/uptime").split()[0]) * os.sysconf("SC_CLK_TCK"))
