"""`opsdrill gameday`: verdicts PASSED / FAILED / INCOMPLETE from the suites' JUnit XML and the
game-day plan, and end to end: up, a suite, a summary in reports/, down."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from opsdrill.cli import main
from opsdrill.errors import UsageError
from opsdrill.exitcodes import ExitCode
from opsdrill.gameday.junit import SkippedTest, node_id, read_junit
from opsdrill.gameday.plan import Conditions, GameDayPlan
from opsdrill.gameday.run import judge_suite, repo_root
from opsdrill.gameday.verdict import Verdict
from opsdrill.runbook import NOT_APPLICABLE, PROCEDURES
from opsdrill.targets.local import LocalTarget
from tests.conftest import world_traversable_tmpdir

#: pytest's own JUnit output (xunit2) for a class with parametrized skips, an xfail, a failure
JUNIT = """<?xml version="1.0" encoding="utf-8"?><testsuites name="pytest tests">
<testsuite name="pytest" errors="0" failures="{failures}" skipped="3" tests="4" time="0.1">
<testcase classname="sub.test_probe.TestX" name="test_p[x[1]]" time="0.001">
<skipped type="pytest.skip" message="because x[1]">sub/test_probe.py:4: because x[1]</skipped>
</testcase>
<testcase classname="sub.test_probe.TestX" name="test_p[y]" time="0.005">
<skipped type="pytest.skip" message="no CUDA device here">sub/test_probe.py:4: no CUDA</skipped>
</testcase>
<testcase classname="sub.test_probe" name="test_xf" time="0.001">
<skipped type="pytest.xfail" message="known bug" /></testcase>
<testcase classname="sub.test_probe" name="test_f" time="0.001">{failure}</testcase>
</testsuite></testsuites>
"""
HERE = Conditions("http://127.0.0.1:8000")


def junit(tmp_path: Path, *, failed: bool = False) -> Path:
    path = tmp_path / "suite.xml"
    failure = "<failure message='assert 0'>assert 0</failure>" if failed else ""
    path.write_text(JUNIT.format(failures=int(failed), failure=failure))
    return path


def plan(tmp_path: Path, body: str) -> GameDayPlan:
    path = tmp_path / "gameday.yaml"
    path.write_text(textwrap.dedent(body))
    return GameDayPlan.load(path)


def test_node_ids_come_back_from_junit_classnames() -> None:
    assert node_id("chaos.test_x", "test_y") == "chaos/test_x.py::test_y"
    assert node_id("a.b.test_c.TestD", "test_e[p]") == "a/b/test_c.py::TestD::test_e[p]"


def test_every_skip_and_xfail_is_read_with_its_reason(tmp_path: Path) -> None:
    read = read_junit(junit(tmp_path))
    assert (read.tests, read.skipped) == (4, 3)
    assert [(s.test, s.message) for s in read.skips] == [
        ("sub/test_probe.py::TestX::test_p[x[1]]", "because x[1]"),
        ("sub/test_probe.py::TestX::test_p[y]", "no CUDA device here"),
        ("sub/test_probe.py::test_xf", "expected to fail (xfail): known bug"),
    ]


def test_a_module_skipped_at_collection_is_a_skip_with_its_reason(tmp_path: Path) -> None:
    path = tmp_path / "module.xml"
    path.write_text(
        '<testsuites><testsuite name="pytest" errors="0" failures="0" skipped="1" tests="2">'
        '<testcase classname="" name="checks.test_m" time="0.000">'
        '<skipped message="collection skipped">'
        "('/x/checks/test_m.py', 2, 'Skipped: no module today')</skipped></testcase>"
        '<testcase classname="checks.test_ok" name="test_b" time="0.01" />'
        "</testsuite></testsuites>"
    )
    [skip] = read_junit(path).skips
    assert skip == SkippedTest("checks/test_m.py", "module skipped at collection: no module today")
    assert judge_suite("checks", 0, 1.0, path, GameDayPlan(), HERE).verdict is Verdict.INCOMPLETE


def test_a_suite_that_passed_but_skipped_is_incomplete(tmp_path: Path) -> None:
    result = judge_suite("chaos", 0, 1.0, junit(tmp_path), GameDayPlan(), HERE)
    assert result.verdict is Verdict.INCOMPLETE and not result.passed
    assert len(result.unexpected_skips) == 3
    assert all("not declared in the game-day plan" in s.why for s in result.skips)


def test_skips_the_plan_expects_here_give_passed(tmp_path: Path) -> None:
    expected = plan(tmp_path, """
        expected_skips:
          - test: "sub/test_probe.py::TestX::test_p[*]"
            when: command_missing:opsdrill-no-such-command
            reason: the probe tool is not on this machine
          - test: "sub/test_probe.py::test_xf"
            when: api_not_https
            reason: known bug, tracked
    """)  # fmt: skip
    result = judge_suite("chaos", 0, 1.0, junit(tmp_path), expected, HERE)
    assert result.verdict is Verdict.PASSED, result.unexpected_skips
    assert {s.why for s in result.skips} == {"the probe tool is not on this machine",
                                            "known bug, tracked"}  # fmt: skip


def test_an_expected_skip_whose_condition_is_false_here_is_not_excused(tmp_path: Path) -> None:
    gpu_machine = plan(tmp_path, """
        expected_skips:
          - test: "sub/test_probe.py::*"
            when: command_missing:sh
            reason: pretend sh is missing
    """)  # fmt: skip
    result = judge_suite("chaos", 0, 1.0, junit(tmp_path), gpu_machine, HERE)
    assert result.verdict is Verdict.INCOMPLETE
    assert all(not s.expected for s in result.skips)
    assert "only when there is no 'sh' command on PATH, which is not so" in result.skips[0].why


def test_the_skip_message_must_match_too(tmp_path: Path) -> None:
    only_cuda = plan(tmp_path, """
        expected_skips:
          - test: "sub/test_probe.py::TestX::*"
            when: api_not_https
            skip_message: "*no CUDA*"
            reason: no CUDA here
    """)  # fmt: skip
    result = judge_suite("chaos", 0, 1.0, junit(tmp_path), only_cuda, HERE)
    assert [s.test for s in result.skips if s.expected] == ["sub/test_probe.py::TestX::test_p[y]"]
    assert result.verdict is Verdict.INCOMPLETE


def test_a_failure_is_failed_whatever_skipped(tmp_path: Path) -> None:
    result = judge_suite("chaos", 1, 1.0, junit(tmp_path, failed=True), GameDayPlan(), HERE)
    assert result.verdict is Verdict.FAILED
    assert result.failed == ["sub/test_probe.py::test_f"]


def test_a_suite_without_junit_cannot_pass(tmp_path: Path) -> None:
    result = judge_suite("load", 0, 1.0, tmp_path / "absent.xml", GameDayPlan(), HERE)
    assert result.verdict is Verdict.INCOMPLETE
    assert "no JUnit XML" in result.skips[0].message


def test_verdicts_have_distinct_exit_codes() -> None:
    codes = {v: v.exit_code for v in Verdict}
    assert codes[Verdict.PASSED] == 0 and codes[Verdict.FAILED] == 1
    assert codes[Verdict.INCOMPLETE] == ExitCode.INCOMPLETE not in (0, 1, 2, 3)
    assert Verdict.worst([Verdict.PASSED, Verdict.INCOMPLETE]) is Verdict.INCOMPLETE
    assert Verdict.worst([Verdict.INCOMPLETE, Verdict.FAILED]) is Verdict.FAILED


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ("expected_skips:\n  - {test: x, when: gpu_absent, reason: r}\n", "unknown condition"),
        ("expected_skips:\n  - {test: x, when: no_cuda}\n", "needs 'test', 'when' and 'reason'"),
        ("expected_skips:\n  - {test: x, when: command_missing, reason: r}\n",
         "write the condition as command_missing:<name>"),
        ("expected_skips: [\n", "not valid YAML"),
        ("expected_skip: []\n", "unknown key(s) expected_skip"),
    ],
)  # fmt: skip
def test_a_bad_plan_is_one_sentence(tmp_path: Path, body: str, says: str) -> None:
    path = tmp_path / "gameday.yaml"
    path.write_text(body)
    with pytest.raises(UsageError, match=says.replace("(", r"\(").replace(")", r"\)")):
        GameDayPlan.load(path)


def test_gameday_refuses_a_missing_plan_before_touching_a_stack(tmp_path: Path, capsys) -> None:
    state = tmp_path / "state"
    code = main(["gameday", "--state-dir", str(state), "--plan-file", str(tmp_path / "nope")])
    assert code == ExitCode.USAGE
    err = capsys.readouterr().err
    assert "game-day plan" in err and "does not exist" in err and err.count("\n") == 1
    assert not state.exists()


def test_the_repo_plan_excuses_the_gpu_drill_only_without_cuda(stack, tmp_path: Path) -> None:
    """The real plan against the GPU drill's real skip, read back from its JUnit XML."""
    from opsdrill.faults.gpu_oom import cuda_available

    def gpu_drill_skips(*extra: str) -> list[SkippedTest]:
        xml = tmp_path / "gpu.xml"
        subprocess.run([sys.executable, "-m", "pytest", "chaos/test_gpu_oom.py", "-q",
                        f"--target=local:{stack.state_dir}", f"--junitxml={xml}",
                        "-p", "no:cacheprovider", *extra],
                       cwd=repo_root(), check=False, capture_output=True)  # fmt: skip
        return read_junit(xml).skips

    repo_plan = GameDayPlan.load(repo_root() / "gameday.yaml")
    refused = SkippedTest("chaos/test_gpu_oom.py::test_x", "destructive: pass --allow-destructive")
    assert not repo_plan.judge("chaos", refused, HERE).expected, "only the no-CUDA skip"
    skips = gpu_drill_skips("--allow-destructive")
    if cuda_available():
        assert not skips, "with CUDA the GPU drill has to run"
    else:
        [no_cuda] = skips
        judged = repo_plan.judge("chaos", no_cuda, HERE)
        assert judged.expected and "no CUDA on this machine" in judged.why


TINY_SUITE = """
import shutil

import pytest


@pytest.mark.runbook("3.1.1")
def test_shown():
    assert shutil.which("sh")


def test_needs_a_tool_this_machine_lacks():
    if shutil.which("opsdrill-no-such-tool") is None:
        pytest.skip("opsdrill-no-such-tool is not installed")


@pytest.mark.runbook("5.2.4")
def test_not_written_yet():
    pytest.skip("the feature is not ready")
"""

TINY_PLAN = """
version: 1
expected_skips:
  - test: "checks/test_tiny.py::test_needs_a_tool_this_machine_lacks"
    when: command_missing:opsdrill-no-such-tool
    skip_message: "*not installed*"
    reason: this machine has no opsdrill-no-such-tool
"""
TINY_PLAN_ALL = (
    TINY_PLAN
    + """
  - test: "checks/test_tiny.py::test_not_written_yet"
    when: command_missing:opsdrill-no-such-tool
    reason: declared for the test
"""
)


def _gameday(stack: LocalTarget, suites: Path, reports: Path, *extra: str):  # type: ignore[no-untyped-def]
    return subprocess.run(
        [sys.executable, "-m", "opsdrill", "gameday", "--state-dir", str(stack.state_dir),
         "--reports", str(reports), "--suites-dir", str(suites), "--suite", "checks", *extra],
        capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip


def test_a_real_gameday_with_an_unexpected_skip_is_incomplete(stack, tmp_path: Path) -> None:
    suites = tmp_path / "suites"
    (suites / "checks").mkdir(parents=True)
    (suites / "checks" / "test_tiny.py").write_text(TINY_SUITE)
    (suites / "gameday.yaml").write_text(TINY_PLAN)

    done = _gameday(stack, suites, tmp_path / "r1")
    assert done.returncode == ExitCode.INCOMPLETE == 4, done.stdout[-3000:] + done.stderr
    assert "game day INCOMPLETE" in done.stdout
    [run] = list((tmp_path / "r1").iterdir())
    summary = json.loads((run / "summary.json").read_text())
    assert summary["verdict"] == "INCOMPLETE" and summary["passed"] is False
    skips = {s["test"]: s for s in summary["skips"]}
    assert skips["checks/test_tiny.py::test_needs_a_tool_this_machine_lacks"]["expected"]
    unexpected = skips["checks/test_tiny.py::test_not_written_yet"]
    assert not unexpected["expected"] and unexpected["message"] == "the feature is not ready"
    md = (run / "summary.md").read_text()
    assert "**INCOMPLETE**" in md and "the feature is not ready" in md
    applicable = len(PROCEDURES) - len(NOT_APPLICABLE)  # listed with their reason instead
    assert (
        f"Runbook coverage: 1 of {applicable} applicable procedures covered by a test that "
        "ran; skipped, no test ran: 5.2.4." in md
    )
    page = (run / "index.html").read_text()
    assert "Game day <b>INCOMPLETE</b>" in page and "NOT expected" in page
    assert "this machine has no opsdrill-no-such-tool" in page

    # the same skip, declared expected (its condition true here): PASSED, exit 0
    (suites / "all.yaml").write_text(TINY_PLAN_ALL)
    done = _gameday(stack, suites, tmp_path / "r2", "--plan-file", str(suites / "all.yaml"))
    assert done.returncode == ExitCode.OK, done.stdout[-3000:] + done.stderr
    assert "game day PASSED" in done.stdout
    assert stack.is_up(), "a game day must leave a stack it found running as it was"


def test_gameday_runs_checks_reports_and_tears_down(tmp_path: Path) -> None:
    state = world_traversable_tmpdir("opsdrill-gameday-") / "state"
    reports = tmp_path / "reports"
    done = subprocess.run(
        [sys.executable, "-m", "opsdrill", "gameday", "--state-dir", str(state),
         "--reports", str(reports), "--suite", "checks"],
        capture_output=True, text=True, check=False, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "game day PASSED" in done.stdout
    [run_dir] = list(reports.iterdir())
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["passed"] is True and summary["verdict"] == "PASSED"
    [checks] = summary["suites"]
    assert checks["name"] == "checks" and checks["tests"] >= 3 and checks["failures"] == 0
    assert all(s["expected"] for s in summary["skips"]), "only skips the plan expects here"
    assert (run_dir / "summary.md").read_text().startswith("# Game day")
    assert (run_dir / "checks.xml").exists()
    target = LocalTarget(state)
    assert not any(s.is_running() for s in target.services.values()), "stack left running"
    target.destroy()


def test_the_summary_shows_recovery_split_mttd_and_slo_evidence(tmp_path: Path) -> None:
    """summary.md/.json from a run's incident records and slo.json (no stack: the artefacts
    are written by hand in the runner's and the gate's formats)."""
    from opsdrill.gameday.run import GameDay
    from tests.test_report_slo import GATE

    day = GameDay(LocalTarget(tmp_path / "state"), reports_root=tmp_path / "reports")
    step = {"runbook": "5.2.2", "procedure": "fix 1: start PostgreSQL", "step": "start PostgreSQL",
            "start": 2.0, "end": 4.5, "status": "succeeded", "actions": ["started"], "error": "",
            "duration": 2.5}  # fmt: skip
    fixed = {"incident_id": "INC-1-db-sigkill", "drill": "db-sigkill", "runbook": "5.2.2",
             "passed": True, "injection_seconds": 0.2, "mttd_seconds": 0.4,
             "mttd_alert_seconds": 1.5, "mttd_probe_seconds": 0.4,
             "mttd_alert_production_seconds": 60.5, "mttr_seconds": 5.1,
             "recovered_by": "§5.2.2 fix 1: start PostgreSQL",
             "procedure": {"runbook": "5.2.2", "title": "fix 1: start PostgreSQL",
                           "steps": [step]},
             "detections": [{"detector": "PostgresDown", "kind": "alert", "t": 2.7,
                             "note": "rule windows scaled ×60 in the embedded stack"}],
             "skipped_detectors": [], "failed_probes": 3, "total_probes": 20}  # fmt: skip
    ridden = {"incident_id": "INC-2-latency", "drill": "latency", "runbook": "5.2.5",
              "passed": True, "mttd_seconds": 0.3, "mttd_alert_seconds": None,
              "mttd_probe_seconds": 0.3, "mttd_alert_production_seconds": None,
              "mttr_seconds": 2.0, "procedure": None,
              "recovered_by": "the stack itself (the toxic's delay ends with the request)",
              "skipped_detectors": ["HighLatency: skipped: no Prometheus on this target"],
              "failed_probes": 0, "total_probes": 10}  # fmt: skip
    folder = day.out / "chaos" / "incidents"
    folder.mkdir(parents=True)
    for inc in (fixed, ridden):
        (folder / f"{inc['incident_id']}.json").write_text(json.dumps(inc))
    (day.out / "load" / "load").mkdir(parents=True)
    (day.out / "load" / "load" / "slo.json").write_text(json.dumps(GATE))
    day.write_summary(12.0)
    md = (day.out / "summary.md").read_text()
    assert f"on the embedded target `local:{tmp_path / 'state'}`" in md, md.splitlines()[2]
    assert ("| db-sigkill | 5.2.2 | PASS | §5.2.2 fix 1: start PostgreSQL | 0.40 | "
            "1.50 (production ≈ 60.50) | 0.40 | 5.10 | 3/20 |") in md  # fmt: skip
    assert "| latency | 5.2.5 | PASS | rode it out (no procedure) | 0.30 | – | 0.30 | 2.00 |" in md
    assert "rule windows scaled ×60" in md
    assert "| §5.2.2 fix 1: start PostgreSQL | db-sigkill | 5.10 | 5.10 | – |" in md
    assert "- **db-sigkill**: §5.2.2 fix 1: start PostgreSQL: start PostgreSQL 2.50 s" in md
    assert "- **latency**: rode it out — the stack itself (the toxic's delay" in md
    assert "skipped detector HighLatency: skipped: no Prometheus on this target" in md
    assert "Profile `cache-cold`: FAIL" in md and "| BREACHED | 99.700 % | bad ≥ 0.156 %" in md
    assert "11529 events needed" in md
    data = json.loads((day.out / "summary.json").read_text())
    [d1, d2] = data["drills"]
    assert d1["procedure"] == "§5.2.2 fix 1: start PostgreSQL" and d2["rode_it_out"] is True
    assert d1["mttd_alert_production_seconds"] == 60.5 and d1["steps"][0]["duration"] == 2.5
    assert [p["median_seconds"] for p in data["mttr_by_procedure"]] == [5.1, 2.0]
    assert data["slo"]["gate_verdict"] == "FAIL" and len(data["slo"]["profiles"]) == 3


def test_no_service_excuses_a_skip_only_where_the_target_lacks_the_service(tmp_path: Path) -> None:
    """The composed stack runs no MLflow: its drill's skip is expected there, and not on a
    target that runs one (nor where the services are unknown)."""
    no_mlflow = plan(tmp_path, """
        expected_skips:
          - test: "sub/test_probe.py::*"
            when: no_service:mlflow
            reason: the composed stack runs no MLflow
    """)  # fmt: skip
    compose = Conditions("http://127.0.0.1:8000", ["api", "db", "prometheus"])
    result = judge_suite("chaos", 0, 1.0, junit(tmp_path), no_mlflow, compose)
    assert result.verdict is Verdict.PASSED, result.unexpected_skips
    embedded = Conditions("http://127.0.0.1:8000", ["api", "db", "mlflow"])
    for here in (embedded, HERE):
        result = judge_suite("chaos", 0, 1.0, junit(tmp_path), no_mlflow, here)
        assert result.verdict is Verdict.INCOMPLETE


def test_no_capability_excuses_a_skip_only_where_the_target_lacks_it(tmp_path: Path) -> None:
    no_proxy = plan(tmp_path, """
        expected_skips:
          - test: "sub/test_probe.py::*"
            when: no_capability:toxiproxy
            reason: the host runs no Toxiproxy between its parts
    """)  # fmt: skip
    host = Conditions("http://127.0.0.1:8000", ["api"], ["exec", "service_control"])
    result = judge_suite("chaos", 0, 1.0, junit(tmp_path), no_proxy, host)
    assert result.verdict is Verdict.PASSED, result.unexpected_skips
    compose = Conditions("http://127.0.0.1:8000", ["api"], ["exec", "toxiproxy"])
    for here in (compose, HERE):
        assert judge_suite("chaos", 0, 1.0, junit(tmp_path), no_proxy, here).verdict is (
            Verdict.INCOMPLETE
        )
