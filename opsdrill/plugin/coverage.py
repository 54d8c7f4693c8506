"""Runbook coverage: which procedures a test that ran has shown, and how those tests fared.

A procedure is *covered* only by a test that ran: one that passed or failed in its call phase.
A procedure whose tests all skipped is "skipped", not covered, and `--coverage-min N` fails the
session when fewer than N % of the runbook's procedures are covered.

Procedure IDs travel on each report's `user_properties`, so the table is right under xdist too
(the controller sees every worker's reports, not items, and judges coverage alone).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from opsdrill.plugin.fleet import HOST_KEY
from opsdrill.runbook import NOT_APPLICABLE, PROCEDURES, check_id, title

__all__ = ["RunbookCoverage"]

KEY = "runbook"
#: a procedure's result is its worst test's
RANK = {"failed": 3, "error": 3, "passed": 1, "skipped": 0}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("opsdrill").addoption(
        "--coverage-min", type=float, default=None, metavar="N",
        help="fail the session when fewer than N %% of the runbook's procedures are covered "
        "by a test that ran (skipped tests do not count)",
    )  # fmt: skip


@dataclass
class _Procedure:
    tests: dict[str, str] = field(default_factory=dict)  # nodeid -> outcome
    ran: set[str] = field(default_factory=set)  # nodeids that passed or failed in their call
    hosts: dict[str, str] = field(default_factory=dict)  # a fleet's host -> its worst outcome

    @property
    def covered(self) -> bool:
        return bool(self.ran)

    @property
    def result(self) -> str:
        if not self.tests:
            return "not covered"
        shown = [o for o in self.tests.values() if o != "skipped"]
        if not shown:
            return "skipped"
        return max(shown, key=lambda o: RANK.get(o, 0))


def _outcome(report: pytest.TestReport) -> tuple[str, bool] | None:
    """(outcome, whether the test body ran) of one phase's report; None for phases that say
    nothing (a passed setup or teardown)."""
    if report.when == "call":
        return report.outcome, report.outcome in ("passed", "failed")
    if report.when == "setup" and not report.passed:
        return ("skipped" if report.skipped else "error"), False
    if report.when == "teardown" and report.failed:
        return "error", False
    return None


def _keep_worst(seen: dict[str, str], key: str, outcome: str) -> None:
    previous = seen.get(key)
    if previous is None or RANK.get(outcome, 0) > RANK.get(previous, 0):
        seen[key] = outcome


class RunbookCoverage:
    """Registered by the plugin; collects outcomes and prints the table at the end."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.procedures: dict[str, _Procedure] = defaultdict(_Procedure)
        self.minimum: float | None = config.getoption("--coverage-min", None)
        if self.minimum is not None and not 0 <= self.minimum <= 100:
            raise pytest.UsageError(
                f"--coverage-min {self.minimum:g} is not a percentage: give 0 to 100"
            )
        self.below: str | None = None  # the one line saying coverage is below the minimum

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
        seen = _outcome(report) if ids else None
        if seen is None:
            return
        outcome, ran = seen
        host = next((str(v) for k, v in report.user_properties if k == HOST_KEY), None)
        for pid in dict.fromkeys(ids):
            proc = self.procedures[pid]
            _keep_worst(proc.tests, report.nodeid, outcome)
            if host is not None:
                _keep_worst(proc.hosts, host, outcome)
            if ran:
                proc.ran.add(report.nodeid)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtestloop(self, session: pytest.Session) -> Iterator[None]:
        """After the last report (every worker's, under xdist): hold coverage to the minimum."""
        result = yield
        if self.minimum is None or hasattr(self.config, "workerinput"):
            return result
        if self.config.getoption("collectonly") or self.config.getoption("--plan", False):
            return result
        covered, total = self.counts()
        percent = 100 * covered / total
        if percent < self.minimum:
            self.below = (
                f"runbook coverage {percent:.1f} % is below --coverage-min {self.minimum:g} %: "
                f"{covered} of {total} procedures covered by a test that ran"
            )
            session.testsfailed += 1
        return result

    def counts(self) -> tuple[int, int]:
        """(procedures covered by a test that ran, procedures that apply to a deployment):
        one listed as not applicable, with its reason, counts only when a test covers it."""
        covered = sum(1 for pid in PROCEDURES if pid in self.procedures
                      and self.procedures[pid].covered)  # fmt: skip
        idle = sum(1 for pid in NOT_APPLICABLE if not self.procedures.get(pid, _Procedure()).tests)
        return covered, len(PROCEDURES) - idle

    def rows(self) -> list[dict[str, object]]:
        rows: list[dict[str, object]] = []
        for pid in PROCEDURES:
            proc = self.procedures.get(pid, _Procedure())
            inapplicable = pid in NOT_APPLICABLE and not proc.tests
            rows.append({
                "procedure": pid,
                "title": title(pid),
                "result": "not applicable" if inapplicable else proc.result,
                "reason": NOT_APPLICABLE[pid] if inapplicable else None,
                "covered": proc.covered,
                "tests": dict(proc.tests),
                "hosts": dict(proc.hosts),
            })  # fmt: skip
        return rows

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if hasattr(self.config, "workerinput"):
            return
        tr = terminalreporter
        if self.procedures:
            self._table(tr)
        if self.below:
            tr.write_line(self.below, red=True, bold=True)

    def _table(self, tr: pytest.TerminalReporter) -> None:
        rows = self.rows()
        covered, total = self.counts()
        tr.section(f"runbook coverage: {covered}/{total} procedures have a test that ran "
                   f"({100 * covered / total:.0f} %)")  # fmt: skip
        for r in rows:
            tests: dict[str, str] = r["tests"]  # type: ignore[assignment]
            if not tests:
                continue
            counts: dict[str, int] = defaultdict(int)
            for outcome in tests.values():
                counts[outcome] += 1
            detail = ", ".join(f"{n} {o}" for o, n in sorted(counts.items()))
            hosts: dict[str, str] = r["hosts"]  # type: ignore[assignment]
            if hosts:
                detail += "; per host: " + ", ".join(f"{h} {o}" for h, o in hosts.items())
            tr.write_line(f"{r['procedure']:<7} {r['title']:<32} {r['result']:<11} ({detail})")
        skipped = [str(r["procedure"]) for r in rows if r["result"] == "skipped"]
        if skipped:
            tr.write_line(f"skipped (no test ran): {', '.join(skipped)}")
        for r in rows:
            if r["result"] == "not applicable":
                tr.write_line(f"not applicable: {r['procedure']} {r['title']}: {r['reason']}")
        missing = [str(r["procedure"]) for r in rows
                   if not r["tests"] and r["result"] != "not applicable"]  # fmt: skip
        if missing:
            tr.write_line(f"not covered: {', '.join(missing)}")
        out = self.write_json(rows)
        tr.write_line(f"coverage JSON: {out}")

    def write_json(self, rows: list[dict[str, object]]) -> Path:
        out = Path(self.config.getoption("--opsdrill-reports")).absolute()
        out.mkdir(parents=True, exist_ok=True)
        path = out / "runbook-coverage.json"
        covered, total = self.counts()
        summary = {
            "covered": covered,
            "skipped": sum(1 for r in rows if r["result"] == "skipped"),
            "total": total,
            "percent": round(100 * covered / total, 1),
            "minimum": self.minimum,
        }
        path.write_text(json.dumps({"summary": summary, "procedures": rows}, indent=2) + "\n")
        return path
