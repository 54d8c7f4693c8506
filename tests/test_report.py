"""The HTML report from a run's artefacts: every section present when its data is."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

from opsdrill.cli import main
from opsdrill.exitcodes import ExitCode
from opsdrill.report import build_report

INCIDENT = {
    "incident_id": "INC-20260101T000000Z-db-sigkill",
    "drill": "db-sigkill",
    "title": "PostgreSQL killed",
    "runbook": "5.2.2",
    "severity": "P0",
    "fault": "db_down(sig=SIGKILL)",
    "passed": True,
    "mttd_seconds": 0.41,
    "mttr_seconds": 3.2,
    "failed_probes": 3,
    "total_probes": 10,
    "errors": [],
    "timeline": [
        {"name": "injected", "t": 1.0, "wall": "x", "detail": "db_down"},
        {"name": "detected", "t": 1.4, "wall": "x", "detail": "/health answers 503"},
        {"name": "reverted", "t": 3.0, "wall": "x", "detail": ""},
        {"name": "recovered", "t": 4.2, "wall": "x", "detail": ""},
    ],
    "samples": [[i * 0.5, not (1 <= i * 0.5 <= 3), 200, 0.01] for i in range(10)],
}


def make_run(root: Path) -> Path:
    run = root / "gameday-x"
    (run / "chaos" / "incidents").mkdir(parents=True)
    (run / "chaos" / "incidents" / "INC.json").write_text(json.dumps(INCIDENT))
    (run / "summary.json").write_text(json.dumps({
        "passed": False, "seconds": 61.0,
        "suites": [{"name": "chaos", "passed": False, "tests": 2, "failures": 1, "errors": 0,
                    "skipped": 0, "seconds": 30.0, "failed": ["chaos/test_x.py::test_y"]}],
    }))  # fmt: skip
    cov = {"procedures": [
        {"procedure": "5.2.2", "title": "Database connection errors", "result": "passed",
         "tests": {"a": "passed"}},
        {"procedure": "5.2.4", "title": "Disk full", "result": "not covered", "tests": {}},
    ]}  # fmt: skip
    (run / "chaos" / "runbook-coverage.json").write_text(json.dumps(cov))
    (run / "load" / "load").mkdir(parents=True)
    slo = {
        "verdict": "FAIL",
        "achieved_rate": 20.0,
        "target_rate": 20.0,
        "achieved_count": 400,
        "target_count": 400,
        "duration_s": 20,
        "slos": [
            {
                "slo": "prediction-latency",
                "verdict": "FAIL",
                "objective": "p95 < 500ms",
                "measured": "p95 612 ms",
                "budget": "burn rate 2.8x, 0.07 % of the 1d budget",
            }
        ],
    }
    (run / "load" / "load" / "slo.json").write_text(json.dumps(slo))  # fmt: skip
    return run


def test_report_has_every_section_and_a_real_plot(tmp_path: Path) -> None:
    page = build_report(make_run(tmp_path)).read_text()
    assert "Game day <b>FAILED</b>" in page
    assert "chaos/test_x.py::test_y" in page
    assert "db-sigkill" in page and "0.41 s" in page and "3.20 s" in page
    assert "1 of 2 applicable procedures covered by a test that ran" in page
    assert "prediction-latency" in page and "p95 612 ms" in page and "burn rate 2.8x" in page
    [uri] = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", page)
    assert base64.b64decode(uri).startswith(b"\x89PNG"), "the plot must be a real PNG"
    assert "http://" not in page and "https://" not in page, "the page must be self-contained"


def test_report_of_an_empty_folder_is_still_a_page(tmp_path: Path) -> None:
    page = build_report(tmp_path).read_text()
    assert page.startswith("<!doctype html>") and "A partial run" in page


def test_report_command_refuses_a_missing_folder(tmp_path: Path, capsys) -> None:
    assert main(["report", str(tmp_path / "nope")]) == ExitCode.USAGE
    assert "is not a directory" in capsys.readouterr().err


def test_report_says_incomplete_and_lists_every_skip(tmp_path: Path) -> None:
    run = tmp_path / "gameday-y"
    run.mkdir()
    skips = [
        {"suite": "chaos", "test": "chaos/test_gpu_oom.py::test_cuda_oom", "expected": True,
         "message": "torch sees no CUDA device here", "why": "no CUDA on this machine"},
        {"suite": "chaos", "test": "chaos/test_oom.py::test_oom_kill", "expected": False,
         "message": "the stack has no worker memory cgroup", "why": "not declared in the plan"},
    ]  # fmt: skip
    (run / "summary.json").write_text(json.dumps({
        "verdict": "INCOMPLETE", "passed": False, "seconds": 9.0, "plan": "gameday.yaml",
        "skips": skips,
        "suites": [{"name": "chaos", "verdict": "INCOMPLETE", "passed": False, "tests": 2,
                    "failures": 0, "errors": 0, "skipped": 2, "seconds": 5.0, "failed": []}],
    }))  # fmt: skip
    page = build_report(run).read_text()
    assert "Game day <b>INCOMPLETE</b>" in page and "banner skip" in page
    assert "1 skipped test(s) the game-day plan does not expect" in page
    assert "<td class='skip'>INCOMPLETE</td>" in page, "the suite's own verdict"
    assert "2 test(s) skipped" in page and "expects 1 of them" in page
    for s in skips:
        assert s["test"] in page and s["message"] in page and s["why"] in page
    assert page.count("NOT expected") == 1


def test_report_of_an_older_summary_without_a_verdict(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    page = build_report(run).read_text()
    assert "Game day <b>FAILED</b>" in page and "<h2>Skips</h2>" not in page


def test_coverage_counts_only_tests_that_ran_across_suites(tmp_path: Path) -> None:
    def row(pid: str, result: str, covered: bool, tests: dict[str, str]) -> dict[str, object]:
        return {"procedure": pid, "title": pid, "result": result, "covered": covered,
                "tests": tests}  # fmt: skip

    run = tmp_path / "gameday-z"
    for suite, rows in {
        "checks": [row("5.2.3", "not covered", False, {}),
                   row("5.2.4", "skipped", False, {"checks/a": "skipped"})],
        "chaos": [row("5.2.3", "skipped", False, {"chaos/gpu": "skipped"}),
                  row("5.2.4", "passed", True, {"chaos/disk": "passed"})],
    }.items():  # fmt: skip
        (run / suite).mkdir(parents=True)
        (run / suite / "runbook-coverage.json").write_text(json.dumps({"procedures": rows}))
    page = build_report(run).read_text()
    assert (
        "1 of 2 applicable procedures covered by a test that ran; skipped, no test ran: 5.2.3."
        in page
    )
    assert "<td class='skip'>skipped</td>" in page and "<td class='pass'>passed</td>" in page
