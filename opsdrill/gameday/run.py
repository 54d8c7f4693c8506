"""The game day: bring the stack up, run each suite in turn, report, tear down.

Each suite runs in its own pytest process against `--target <the target's spec>`, so a crash
in one cannot take the narrator (and the teardown) with it. The stack is stopped in `finally`:
a failed suite, Ctrl-C or SIGTERM all still end with every service down — unless the stack was
already running before the game day began, in which case it is left as it was found.

The verdict is PASSED, FAILED or INCOMPLETE (`gameday.verdict`): a suite whose pytest
passed but skipped a test that the game-day plan (`gameday.plan`) does not expect on this
machine did not show everything it was meant to show.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from opsdrill.errors import UsageError
from opsdrill.faults.rollback import rollback
from opsdrill.gameday.junit import read_junit
from opsdrill.gameday.plan import Conditions, GameDayPlan, JudgedSkip
from opsdrill.gameday.verdict import Verdict
from opsdrill.report import build_report
from opsdrill.report.collect import RunArtefacts
from opsdrill.report.summary import drill_data, drill_lines, slo_data, slo_lines
from opsdrill.targets.base import Target

__all__ = ["SUITES", "GameDay", "SuiteResult", "repo_root"]

#: suites in the order a game day runs them: routine checks, then drills, then load.
SUITES: dict[str, list[str]] = {
    "checks": [],
    "chaos": ["--allow-destructive"],
    "load": [],
}


def repo_root() -> Path:
    """The checkout holding checks/, chaos/ and load/ (opsdrill is installed editable)."""
    return Path(__file__).resolve().parents[2]


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
    skips: list[JudgedSkip] = field(default_factory=list)
    junit: str = ""

    @property
    def verdict(self) -> Verdict:
        if self.exit_code != 0:
            return Verdict.FAILED
        return Verdict.INCOMPLETE if self.unexpected_skips else Verdict.PASSED

    @property
    def passed(self) -> bool:
        return self.verdict is Verdict.PASSED

    @property
    def unexpected_skips(self) -> list[JudgedSkip]:
        return [s for s in self.skips if not s.expected]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"passed": self.passed, "verdict": str(self.verdict)}


def judge_suite(
    name: str, exit_code: int, seconds: float, junit: Path, plan: GameDayPlan, here: Conditions
) -> SuiteResult:
    """A suite's result from its exit code and JUnit file, every skip judged against the plan.

    A suite that exited 0 without a JUnit file cannot say what ran: INCOMPLETE, not PASSED.
    """
    result = SuiteResult(name, exit_code, seconds, junit=junit.name)
    if not junit.exists():
        result.skips.append(JudgedSkip(name, f"{name}/ (whole suite)",
                                       f"no JUnit XML at {junit}: what ran is unknown", False,
                                       "a suite that did not report cannot be judged"))  # fmt: skip
        return result
    read = read_junit(junit)
    result.tests, result.failures, result.errors = read.tests, read.failures, read.errors
    result.skipped, result.failed = read.skipped, read.failed
    result.skips = [plan.judge(name, skip, here) for skip in read.skips]
    return result


class GameDay:
    def __init__(
        self,
        target: Target,
        *,
        reports_root: Path,
        keep_up: bool = False,
        only: list[str] | None = None,
        plan: GameDayPlan | None = None,
        suites_root: Path | None = None,
    ) -> None:
        self.target = target
        self.run_id = datetime.now(UTC).strftime("gameday-%Y%m%dT%H%M%SZ")
        self.out = reports_root.absolute() / self.run_id
        self.keep_up = keep_up
        self.only = only
        self.plan = plan or GameDayPlan()
        self.root = (suites_root or repo_root()).absolute()
        self.planned: list[str] = []
        self.results: list[SuiteResult] = []

    def say(self, line: str) -> None:
        stamp = datetime.now().strftime("%H:%M:%S")
        print(f"[{stamp}] {line}", flush=True)

    def suites(self) -> list[str]:
        """Suites that exist in this checkout (a suite directory with at least one test file)."""
        have = [n for n in SUITES if any((self.root / n).glob("test_*.py"))]
        if self.only:
            unknown = sorted(set(self.only) - set(have))
            if unknown:
                raise UsageError(
                    f"unknown suite(s) {', '.join(unknown)}: choose from {', '.join(have)}"
                )
            have = [n for n in have if n in self.only]
        return have

    def verdict(self) -> Verdict:
        """FAILED if a planned suite did not run or failed; INCOMPLETE if one skipped what the
        plan does not expect here; PASSED only when everything planned was shown."""
        if not self.results or len(self.results) < len(self.planned):
            return Verdict.FAILED
        return Verdict.worst(r.verdict for r in self.results)

    def run(self) -> int:
        self.planned = self.suites()
        self.out.mkdir(parents=True, exist_ok=True)
        runs_itself = self.target.state_home() is not None  # else deployed elsewhere: as it is
        started_here = runs_itself and not self.target.is_up()
        t0 = time.monotonic()
        self.say(f"game day {self.run_id}: suites {', '.join(self.planned)}; "
                 f"reports in {self.out}")  # fmt: skip
        self.say(f"game-day plan ({self.plan.source}): {len(self.plan.expected)} expected "
                 "skip(s); any other skip makes the game day INCOMPLETE")  # fmt: skip
        try:
            self.say("bringing the stack up" if started_here else "stack is up; reusing it")
            rollback(self.target, say=lambda line: self.say(f"  {line}"))
            if runs_itself:
                self.target.up(say=lambda line: self.say(f"  {line}"))
            here = Conditions(self.target.endpoints.api_url, self.target.services,
                              self.target.capabilities)  # fmt: skip
            for name in self.planned:
                self.results.append(self.run_suite(name, here))
        finally:
            if started_here and not self.keep_up:
                self.say("tearing the stack down")
                self.target.down(say=lambda line: self.say(f"  {line}"))
            self.write_summary(time.monotonic() - t0)
            self.say(f"report: {build_report(self.out)}")
            self.allure_report()
        verdict = self.verdict()
        for skip in (s for r in self.results for s in r.skips):
            label = "expected" if skip.expected else "NOT EXPECTED"
            self.say(f"skip {label}: {skip.test}: {skip.message} ({skip.why})")
        self.say(f"game day {verdict}; summary: {self.out / 'summary.md'}")
        return int(verdict.exit_code)

    def run_suite(self, name: str, here: Conditions) -> SuiteResult:
        junit = self.out / f"{name}.xml"
        cmd = [
            sys.executable, "-m", "pytest", str(self.root / name),
            f"--rootdir={self.root}",
            f"--target={self.target.spec}",
            f"--junitxml={junit}",
            f"--opsdrill-reports={self.out / name}",
            f"--alluredir={self.out / name / 'allure-results'}",
            "-p", "no:cacheprovider",
            *SUITES[name],
        ]  # fmt: skip
        self.say(f"suite {name}: {' '.join(cmd[3:4])}")
        t0 = time.monotonic()
        code = subprocess.run(cmd, cwd=self.root, check=False).returncode
        result = judge_suite(name, code, time.monotonic() - t0, junit, self.plan, here)
        expected = len(result.skips) - len(result.unexpected_skips)
        self.say(
            f"suite {name}: {result.verdict} — {result.tests} tests, {result.failures} failed, "
            f"{result.errors} errors, {result.skipped} skipped ({expected} expected on this "
            f"machine) in {result.seconds:.1f} s"
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
        verdict = self.verdict()
        skips = [asdict(s) for r in self.results for s in r.skips]
        unexpected = [s for s in skips if not s["expected"]]
        data: dict[str, Any] = {
            "run_id": self.run_id,
            "verdict": str(verdict),
            "passed": verdict is Verdict.PASSED,
            "seconds": round(seconds, 1),
            "plan": self.plan.source,
            "suites": [r.as_dict() for r in self.results],
            "skips": skips,
        }
        artefacts = RunArtefacts.load(self.out)
        data |= drill_data(artefacts.incidents)
        data["slo"] = slo_data(artefacts.slo)
        data["coverage"] = _coverage(artefacts.coverage)
        (self.out / "summary.json").write_text(json.dumps(data, indent=2) + "\n")
        for d in data["drills"]:
            self.say(
                f"drill {d['drill']:<22} {'PASS' if d['passed'] else 'FAIL'}  "
                f"MTTD {_secs(d['mttd_seconds'])} s  MTTR {_secs(d['mttr_seconds'])} s  "
                f"{d['procedure'] or ''}"
            )
        lines = [
            f"# Game day {self.run_id}",
            "",
            f"**{verdict}** in {seconds:.0f} s on the {self.target.kind} target "
            f"`{self.target.spec}`"
            + (f": {len(unexpected)} skipped test(s) the plan does not expect on this machine."
               if verdict is Verdict.INCOMPLETE else "."),
            "",
            "| suite | verdict | tests | failed | errors | skipped | seconds |",
            "|---|---|---:|---:|---:|---:|---:|",
        ]  # fmt: skip
        for r in self.results:
            lines.append(
                f"| {r.name} | {r.verdict} | {r.tests} | {r.failures} | {r.errors} | "
                f"{r.skipped} | {r.seconds:.1f} |"
            )
        missing = self.planned[len(self.results) :]
        if missing:
            lines += ["", f"Did not run: {', '.join(missing)}."]
        if cov := data["coverage"]:
            lines += ["", f"Runbook coverage: {cov['covered']} of {cov['total']} applicable "
                      "procedures covered by a test that ran" + (f"; skipped, no test ran: "
                      f"{', '.join(cov['skipped'])}" if cov["skipped"] else "") + "."]  # fmt: skip
        lines += drill_lines(artefacts.incidents)
        lines += slo_lines(artefacts.slo)
        failed = [(r.name, t) for r in self.results for t in r.failed]
        if failed:
            lines += ["", "## Failed", ""] + [f"- `{s}`: {t}" for s, t in failed]
        lines += _skip_lines(skips, self.plan.source)
        (self.out / "summary.md").write_text("\n".join(lines) + "\n")


def _secs(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def _coverage(rows: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """The suites' runbook coverage merged: only a test that ran covers a procedure."""
    if not rows:
        return None
    return {
        "covered": sum(1 for r in rows.values() if r.get("covered")),
        "total": sum(1 for r in rows.values() if r["result"] != "not applicable"),
        "skipped": [p for p, r in rows.items() if r["result"] == "skipped"],
    }


def _skip_lines(skips: list[dict[str, Any]], plan: str) -> list[str]:
    """Every skip with pytest's reason and whether the plan expects it on this machine."""
    if not skips:
        return []
    lines = ["", "## Skips", "", f"Plan: {plan}.", "",
             "| suite | test | skip reason | expected here | why |",
             "|---|---|---|---|---|"]  # fmt: skip
    for s in skips:
        cells = [s["suite"], f"`{s['test']}`", s["message"], "yes" if s["expected"] else "**no**",
                 s["why"]]  # fmt: skip
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return lines
