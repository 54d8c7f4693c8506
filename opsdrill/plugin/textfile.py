"""Smoke mode: results as Prometheus text, for a node exporter's textfile collector.

A scheduler runs the read-only checks every few minutes with `--prometheus-textfile PATH`;
the file is replaced atomically (the collector must never read half a file) and holds one
gauge per check plus the run's duration and timestamp, so alerting on a failing check is one
Prometheus rule.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

__all__ = ["TextfileExporter"]

OUTCOME_VALUE = {"passed": 1, "failed": 0, "error": 0}


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


class TextfileExporter:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.started = time.time()
        self.results: dict[str, tuple[str, float, str]] = {}  # nodeid -> outcome, secs, runbook

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        runbook = str(next((v for k, v in report.user_properties if k == "runbook"), ""))
        if report.when == "call":
            self.results[report.nodeid] = (report.outcome, report.duration, runbook)
        elif report.failed:  # setup or teardown error
            self.results[report.nodeid] = ("error", report.duration, runbook)
        elif report.skipped and report.when == "setup":
            self.results[report.nodeid] = ("skipped", 0.0, runbook)

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if hasattr(session.config, "workerinput"):
            return
        self.write(int(exitstatus))

    def render(self, exitstatus: int) -> str:
        lines = [
            "# HELP opsdrill_check_success 1 if the check passed, 0 if it failed.",
            "# TYPE opsdrill_check_success gauge",
        ]
        durations = [
            "# HELP opsdrill_check_duration_seconds How long the check took.",
            "# TYPE opsdrill_check_duration_seconds gauge",
        ]
        for nodeid, (outcome, secs, runbook) in sorted(self.results.items()):
            if outcome not in OUTCOME_VALUE:
                continue  # a skipped check is neither a pass nor a failure
            labels = f'check="{_escape(nodeid)}",runbook="{_escape(runbook)}"'
            lines.append(f"opsdrill_check_success{{{labels}}} {OUTCOME_VALUE[outcome]}")
            durations.append(f"opsdrill_check_duration_seconds{{{labels}}} {secs:.3f}")
        now = time.time()
        tail = [
            "# HELP opsdrill_run_duration_seconds Wall time of the whole check run.",
            "# TYPE opsdrill_run_duration_seconds gauge",
            f"opsdrill_run_duration_seconds {now - self.started:.3f}",
            "# HELP opsdrill_run_timestamp_seconds When the check run finished (unix time).",
            "# TYPE opsdrill_run_timestamp_seconds gauge",
            f"opsdrill_run_timestamp_seconds {now:.3f}",
            "# HELP opsdrill_run_exit_status pytest's exit status of the run (0 = all passed).",
            "# TYPE opsdrill_run_exit_status gauge",
            f"opsdrill_run_exit_status {exitstatus}",
        ]
        return "\n".join(lines + durations + tail) + "\n"

    def write(self, exitstatus: int) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(self.render(exitstatus))
        os.replace(tmp, self.path)
