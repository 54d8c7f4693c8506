"""The game day: bring the embedded stack up, run each suite in turn, report, tear down.

Each suite runs in its own pytest process against `--target local:<state dir>`, so a crash
in one cannot take the narrator (and the teardown) with it. The stack is stopped in `finally`:
a failed suite, Ctrl-C or SIGTERM all still end with every service down — unless the stack was
already running before the game day began, in which case it is left as it was found.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from opsdrill.exitcodes import ExitCode
from opsdrill.targets.local import LocalTarget

__all__ = ["SUITES", "GameDay", "SuiteResult", "repo_root"]

#: suites in the order a game day runs them: routine checks, then drills, then load.
SUITES: dict[str, list[str]] = {
    "checks": [],
    "chaos": ["--allow-destructive"],
    "load": [],
}


def repo_root() -> Path:
    """The checkout holding checks/, chaos/ and load/ (opsdrill is installed editable)."""
    return Path(__file__).resolve().parents[1]


@dataclass
class SuiteResult:
    name: str
    exit_code: int
    seconds: float
    tests: int = 0
    failures: int = 0
    errors: int = 0
    skipped: int = 0
    failed: list[str] = field(default_factory=list)
    junit: str = ""

    @property
    def passed(self) -> bool:
        return self.exit_code == 0

    @property
    def verdict(self) -> str:
        return "PASS" if self.passed else "FAIL"


class GameDay:
    def __init__(
        self,
        target: LocalTarget,
        *,
        reports_root: Path,
        keep_up: bool = False,
        only: list[str] | None = None,
    ) -> None:
        self.target = target
        self.run_id = datetime.now(UTC).strftime("gameday-%Y%m%dT%H%M%SZ")
        self.out = reports_root.absolute() / self.run_id
        self.keep_up = keep_up
        self.only = only
        self.results: list[SuiteResult] = []

    def say(self, line: str) -> None:
        stamp = datetime.now().strftime("%H:%M:%S")
        print(f"[{stamp}] {line}", flush=True)

    def suites(self) -> list[str]:
        """Suites that exist in this checkout (a suite directory with at least one test file)."""
        root = repo_root()
        have = [n for n in SUITES if any((root / n).glob("test_*.py"))]
        if self.only:
            unknown = sorted(set(self.only) - set(have))
            if unknown:
                from opsdrill.errors import UsageError

                raise UsageError(
                    f"unknown suite(s) {', '.join(unknown)}: choose from {', '.join(have)}"
                )
            have = [n for n in have if n in self.only]
        return have

    def run(self) -> int:
        suites = self.suites()
        self.out.mkdir(parents=True, exist_ok=True)
        started_here = not self.target.is_up()
        t0 = time.monotonic()
        self.say(f"game day {self.run_id}: suites {', '.join(suites)}; reports in {self.out}")
        try:
            self.say("bringing the stack up" if started_here else "stack is up; reusing it")
            from opsdrill.faults.rollback import rollback

            rollback(self.target, say=lambda line: self.say(f"  {line}"))
            self.target.up(say=lambda line: self.say(f"  {line}"))
            for name in suites:
                self.results.append(self.run_suite(name))
        finally:
            if started_here and not self.keep_up:
                self.say("tearing the stack down")
                self.target.down(say=lambda line: self.say(f"  {line}"))
            self.write_summary(time.monotonic() - t0)
            from opsdrill.report import build_report

            self.say(f"report: {build_report(self.out)}")
            self.allure_report()
        ok = all(r.passed for r in self.results) and len(self.results) == len(suites)
        self.say(f"game day {'PASSED' if ok else 'FAILED'}; summary: {self.out / 'summary.md'}")
        return ExitCode.OK if ok else ExitCode.FAILED

    def run_suite(self, name: str) -> SuiteResult:
        junit = self.out / f"{name}.xml"
        cmd = [
            sys.executable, "-m", "pytest", str(repo_root() / name),
            f"--target=local:{self.target.state_dir}",
            f"--junitxml={junit}",
            f"--opsdrill-reports={self.out / name}",
            f"--alluredir={self.out / name / 'allure-results'}",
            "-p", "no:cacheprovider",
            *SUITES[name],
        ]  # fmt: skip
        self.say(f"suite {name}: {' '.join(cmd[3:4])}")
        t0 = time.monotonic()
        code = subprocess.run(cmd, cwd=repo_root(), check=False).returncode
        result = SuiteResult(name, code, time.monotonic() - t0, junit=junit.name)
        _read_junit(junit, result)
        self.say(
            f"suite {name}: {result.verdict} — {result.tests} tests, {result.failures} failed, "
            f"{result.errors} errors, {result.skipped} skipped in {result.seconds:.1f} s"
        )
        return result

    def allure_report(self) -> None:
        """Allure's HTML from every suite's results, when the `allure` command is installed."""
        allure = shutil.which("allure")
        results = [str(p) for p in sorted(self.out.glob("*/allure-results")) if any(p.iterdir())]
        if allure is None or not results:
            self.say("allure: results in */allure-results; no 'allure' command for HTML "
                     "(npm install -g allure-commandline)")  # fmt: skip
            return
        out = self.out / "allure-report"
        done = subprocess.run([allure, "generate", *results, "-o", str(out), "--clean"],
                              capture_output=True, text=True, check=False)  # fmt: skip
        self.say(f"allure: {out / 'index.html'}" if done.returncode == 0
                 else f"allure generate failed: {done.stderr.strip()[-300:]}")  # fmt: skip

    def write_summary(self, seconds: float) -> None:
        ok = bool(self.results) and all(r.passed for r in self.results)
        data = {
            "run_id": self.run_id,
            "passed": ok,
            "seconds": round(seconds, 1),
            "suites": [asdict(r) | {"passed": r.passed} for r in self.results],
        }
        from opsdrill.report.collect import RunArtefacts

        drills: list[dict[str, Any]] = [
            {k: i.get(k) for k in ("drill", "runbook", "passed", "mttd_seconds", "mttr_seconds",
                                   "failed_probes", "total_probes", "incident_id")}
            for i in RunArtefacts.load(self.out).incidents
        ]  # fmt: skip
        data["drills"] = drills
        (self.out / "summary.json").write_text(json.dumps(data, indent=2) + "\n")
        for d in drills:
            self.say(
                f"drill {d['drill']:<22} {'PASS' if d['passed'] else 'FAIL'}  "
                f"MTTD {_secs(d['mttd_seconds'])} s  MTTR {_secs(d['mttr_seconds'])} s"
            )
        lines = [
            f"# Game day {self.run_id}",
            "",
            f"**{'PASSED' if ok else 'FAILED'}** in {seconds:.0f} s on the embedded stack "
            f"(`{self.target.state_dir}`).",
            "",
            "| suite | verdict | tests | failed | errors | skipped | seconds |",
            "|---|---|---:|---:|---:|---:|---:|",
        ]
        for r in self.results:
            lines.append(
                f"| {r.name} | {r.verdict} | {r.tests} | {r.failures} | {r.errors} | "
                f"{r.skipped} | {r.seconds:.1f} |"
            )
        lines += _drill_lines(data)
        failed = [(r.name, t) for r in self.results for t in r.failed]
        if failed:
            lines += ["", "## Failed", ""] + [f"- `{s}`: {t}" for s, t in failed]
        (self.out / "summary.md").write_text("\n".join(lines) + "\n")


def _secs(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def _drill_lines(data: dict) -> list[str]:  # type: ignore[type-arg]
    """The drills table of the summary: MTTD and MTTR per drill, from its incident record."""
    if not data.get("drills"):
        return []
    lines = ["", "## Drills", "", "| drill | runbook | verdict | MTTD s | MTTR s | failed probes |",
             "|---|---|---|---:|---:|---:|"]  # fmt: skip
    for d in data["drills"]:
        lines.append(
            f"| {d['drill']} | {d['runbook']} | {'PASS' if d['passed'] else 'FAIL'} | "
            f"{_secs(d['mttd_seconds'])} | {_secs(d['mttr_seconds'])} | "
            f"{d['failed_probes']}/{d['total_probes']} |"
        )
    return lines


def _read_junit(path: Path, result: SuiteResult) -> None:
    """Fill counts and failed test ids from pytest's JUnit XML, when it was written."""
    if not path.exists():
        return
    root = ET.parse(path).getroot()
    for suite in root.iter("testsuite"):
        result.tests += int(suite.get("tests", 0))
        result.failures += int(suite.get("failures", 0))
        result.errors += int(suite.get("errors", 0))
        result.skipped += int(suite.get("skipped", 0))
    for case in root.iter("testcase"):
        if case.find("failure") is not None or case.find("error") is not None:
            result.failed.append(f"{case.get('classname')}::{case.get('name')}")
