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
    assert "test_b" not in result.stdout.str().split("unknown target")[1]
