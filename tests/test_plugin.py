"""The pytest plugin through the front door: options, markers, refusals and exit codes."""

from __future__ import annotations

import pytest

from opsdrill.exitcodes import ExitCode


def test_markers_are_registered(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.runbook(procedure_id)*", "@pytest.mark.sandbox*"])


def test_unknown_marker_fails_under_strict_markers(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("import pytest\n@pytest.mark.runbok('3.1.1')\ndef test_x(): pass\n")
    result = pytester.runpytest("--strict-markers")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*'runbok' not found in `markers`*"])


def test_destructive_is_skipped_without_the_flag(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("import pytest\n@pytest.mark.destructive\ndef test_x(): assert 0\n")
    result = pytester.runpytest("-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*pass --allow-destructive*"])


def test_bad_target_ends_the_session_with_exit_2(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_a(target): pass\ndef test_b(target): pass\n")
    result = pytester.runpytest("--target", "ssh://nowhere")
    assert result.ret == ExitCode.USAGE
    result.stdout.fnmatch_lines(["*unknown target 'ssh://nowhere'*"])
    assert "::test_b" not in result.stdout.str().split("unknown target")[1]


def test_the_fixtures_users_need_come_with_the_plugin(pytester: pytest.Pytester) -> None:
    """No conftest: `host` is the target's machine (not testinfra's local host), and the
    drill fixtures exist, as an installed opsdrill gives them to a suite of the user's own."""
    pytester.makepyfile(
        """
        import pytest

        class Machine:
            def testinfra_host(self):
                return "the target's machine"

        @pytest.fixture(scope="session")
        def target():
            return Machine()

        def test_host(host):
            assert host == "the target's machine"

        def test_drill_fixtures(request):
            for name in ("drill", "assert_drill", "probes", "fault_probes", "proxy_hops",
                         "data_fs", "api", "api_admin", "db"):
                assert request._fixturemanager.getfixturedefs(name, request.node), name
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


RUNBOOK_TESTS = """
import pytest

@pytest.mark.runbook("3.1.1")
def test_health(): pass

@pytest.mark.runbook("3.1.1")
def test_backup_age(): assert 0, "backup is 30 h old"

@pytest.mark.runbook("4.2")
def test_rules(): pass
"""


def test_coverage_table_and_json(pytester: pytest.Pytester) -> None:
    import json

    pytester.makepyfile(RUNBOOK_TESTS)
    result = pytester.runpytest("--opsdrill-reports", "out")
    result.stdout.fnmatch_lines(
        [
            "*runbook coverage: 2/* procedures have a test*",
            "3.1.1*Daily health check*failed*(1 failed, 1 passed)*",
            "4.2*Alert rules*passed*",
            "not covered: 2.3, *",
        ]
    )
    data = json.loads((pytester.path / "out" / "runbook-coverage.json").read_text())
    by_id = {row["procedure"]: row for row in data["procedures"]}
    assert by_id["3.1.1"]["result"] == "failed"
    assert by_id["5.2.2"]["result"] == "not covered"


def test_unknown_runbook_id_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("import pytest\n@pytest.mark.runbook('3.9.9')\ndef test_x(): pass\n")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*unknown runbook procedure '3.9.9'*"])


def test_coverage_is_right_under_xdist(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(RUNBOOK_TESTS)
    result = pytester.runpytest("-n", "2", "--opsdrill-reports", "out")
    result.stdout.fnmatch_lines(["3.1.1*failed*(1 failed, 1 passed)*"])


def test_prometheus_textfile(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(RUNBOOK_TESTS)
    pytester.runpytest("--prometheus-textfile", "metrics/opsdrill.prom")
    text = (pytester.path / "metrics" / "opsdrill.prom").read_text()
    assert (
        'opsdrill_check_success{check="test_prometheus_textfile.py::test_health",'
        'runbook="3.1.1"} 1' in text
    )
    assert 'test_backup_age",runbook="3.1.1"} 0' in text
    assert "opsdrill_run_exit_status 1" in text
    assert "# TYPE opsdrill_run_timestamp_seconds gauge" in text
    if __import__("shutil").which("promtool"):
        import subprocess

        lint = subprocess.run(["promtool", "check", "metrics"], input=text, text=True,
                              capture_output=True, check=False)  # fmt: skip
        assert lint.returncode == 0, lint.stderr
