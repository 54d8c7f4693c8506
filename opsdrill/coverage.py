"""Runbook coverage: which procedures have a test, and how those tests fared.

Procedure IDs travel on each report's `user_properties`, so the table is right under xdist too
(the controller sees reports, not items).
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from opsdrill.runbook import PROCEDURES, check_id, title

__all__ = ["RunbookCoverage"]

KEY = "runbook"
#: a procedure's result is its worst test's
RANK = {"failed": 3, "error": 3, "passed": 1, "skipped": 0}


@dataclass
class _Procedure:
    tests: dict[str, str] = field(default_factory=dict)  # nodeid -> outcome

    @property
    def result(self) -> str:
        if not self.tests:
            return "not covered"
        return max(self.tests.values(), key=lambda o: RANK.get(o, 0))


class RunbookCoverage:
    """Registered by the plugin; collects outcomes and prints the table at the end."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.procedures: dict[str, _Procedure] = defaultdict(_Procedure)

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        for item in items:
            for mark in item.iter_markers(KEY):
                if len(mark.args) != 1:
                    raise pytest.UsageError(f"{item.nodeid}: use @pytest.mark.runbook('3.1.1')")
                try:
                    pid = check_id(str(mark.args[0]))
                except Exception as exc:
                    raise pytest.UsageError(f"{item.nodeid}: {exc}") from None
                item.user_properties.append((KEY, pid))

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        ids = [str(v) for k, v in report.user_properties if k == KEY]
        if not ids:
            return
        if report.when == "call" or (report.when == "setup" and not report.passed):
            outcome = (
                report.outcome
                if report.when == "call"
                else ("skipped" if report.skipped else "error")
            )
        elif report.when == "teardown" and report.failed:
            outcome = "error"
        else:
            return
        for pid in dict.fromkeys(ids):
            previous = self.procedures[pid].tests.get(report.nodeid)
            if previous is None or RANK.get(outcome, 0) > RANK.get(previous, 0):
                self.procedures[pid].tests[report.nodeid] = outcome

    def rows(self) -> list[dict[str, object]]:
        return [
            {
                "procedure": pid,
                "title": title(pid),
                "result": self.procedures[pid].result if pid in self.procedures else "not covered",
                "tests": dict(self.procedures[pid].tests) if pid in self.procedures else {},
            }
            for pid in PROCEDURES
        ]

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if not self.procedures or hasattr(self.config, "workerinput"):
            return
        rows = self.rows()
        covered = sum(1 for r in rows if r["tests"])
        tr = terminalreporter
        tr.section(f"runbook coverage: {covered}/{len(rows)} procedures have a test")
        for r in rows:
            if not r["tests"]:
                continue
            counts: dict[str, int] = defaultdict(int)
            tests: dict[str, str] = r["tests"]  # type: ignore[assignment]
            for outcome in tests.values():
                counts[outcome] += 1
            detail = ", ".join(f"{n} {o}" for o, n in sorted(counts.items()))
            tr.write_line(f"{r['procedure']:<7} {r['title']:<32} {r['result']:<8} ({detail})")
        missing = [str(r["procedure"]) for r in rows if not r["tests"]]
        if missing:
            tr.write_line(f"not covered: {', '.join(missing)}")
        out = self.write_json(rows)
        tr.write_line(f"coverage JSON: {out}")

    def write_json(self, rows: list[dict[str, object]]) -> Path:
        out = Path(self.config.getoption("--opsdrill-reports")).absolute()
        out.mkdir(parents=True, exist_ok=True)
        path = out / "runbook-coverage.json"
        path.write_text(json.dumps({"procedures": rows}, indent=2) + "\n")
        return path
