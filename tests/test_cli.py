"""The CLI's refusals: one line saying what is wrong and what to do, and a non-zero exit."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from opsdrill.cli import main
from opsdrill.exitcodes import ExitCode


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "opsdrill", *args], capture_output=True, text=True, check=False
    )


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["frobnicate"], "invalid choice"),
        (["up", "--no-such-flag"], "unrecognized arguments"),
        ([], "required"),
    ],
)
def test_bad_usage_is_one_line_and_exit_2(args: list[str], needle: str) -> None:
    done = run_cli(*args)
    assert done.returncode == ExitCode.USAGE
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert needle in lines[0] and "opsdrill --help" in lines[0]


def test_status_of_a_stack_that_is_not_up(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code = main(["status", "--state-dir", str(tmp_path / "none"), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == ExitCode.FAILED
    assert out["healthy"] is False
    assert {s["name"] for s in out["services"]} >= {"db", "api"}
    assert all(not s["running"] for s in out["services"])


def test_down_of_a_stack_that_is_not_up_is_harmless(tmp_path: Path) -> None:
    assert main(["down", "--state-dir", str(tmp_path / "none")]) == ExitCode.OK


def test_unknown_suite_is_refused(tmp_path: Path) -> None:
    done = run_cli("gameday", "--state-dir", str(tmp_path), "--suite", "nope")
    assert done.returncode == ExitCode.USAGE
    assert "unknown suite(s) nope" in done.stderr
    assert "Traceback" not in done.stderr


def test_unreachable_state_dir_for_postgres_is_explained(tmp_path: Path) -> None:
    """pytest's tmp_path is private to root: the postgres user cannot use it."""
    import os

    if os.geteuid() != 0:
        pytest.skip("only root hands the cluster to the postgres user")
    done = run_cli("up", "--state-dir", str(tmp_path / "s"), "--no-monitoring")
    assert done.returncode == ExitCode.ENVIRONMENT, done.stderr
    assert "cannot write" in done.stderr and "--state-dir" in done.stderr
    assert "Traceback" not in done.stderr
