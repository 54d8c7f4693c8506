"""examples/release-gate.yml stays a pipeline a user can copy: every script it runs exists,
every opsdrill subcommand and pytest option it passes is real, and it composes, drills and
takes down the way the Docker target needs (-p, --target docker:, down -v always)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from opsdrill.cli import build_parser
from opsdrill.gameday.plan import GameDayPlan

ROOT = Path(__file__).resolve().parents[1]
GATE = ROOT / "examples" / "release-gate.yml"


@pytest.fixture(scope="module")
def steps() -> list[dict[str, Any]]:
    workflow = yaml.safe_load(GATE.read_text())
    (job,) = workflow["jobs"].values()
    return list(job["steps"])


def commands(steps: list[dict[str, Any]]) -> list[list[str]]:
    """Every shell command line of the run steps, split into words (sudo -E dropped)."""
    found = []
    for step in steps:
        for line in str(step.get("run", "")).splitlines():
            for part in re.split(r"\s*(?:&&|\|\||\||;)\s*", line.strip()):
                words = shlex.split(part) if part else []
                while words and words[0] in ("sudo", "-E"):
                    words.pop(0)
                if words:
                    found.append(words)
    return found


def test_scripts_it_runs_exist_and_are_executable(steps: list[dict[str, Any]]) -> None:
    scripts = [w[0] for w in commands(steps) if w[0].startswith("scripts/")]
    assert "scripts/build-images.sh" in scripts
    for script in scripts:
        assert os.access(ROOT / script, os.X_OK), f"{script} is not an executable in the repo"


def test_opsdrill_commands_parse(steps: list[dict[str, Any]]) -> None:
    runs = [w[1:] for w in commands(steps) if w[0].endswith("/opsdrill")]
    assert {r[0] for r in runs} >= {"up", "status", "gameday", "rollback"}
    for argv in runs:
        args = build_parser().parse_args([a.replace("$TARGET", "docker:p") for a in argv])
        assert args.target == "docker:p", f"opsdrill {argv[0]} must name the composed target"


def test_the_game_day_judges_every_suite_with_the_compose_plan(
    steps: list[dict[str, Any]],
) -> None:
    """One `opsdrill gameday` against the composed target: checks, chaos and load (no --suite
    narrowing it), skips judged by gameday-compose.yaml, so an unexcused skip fails the gate."""
    (words,) = [w[1:] for w in commands(steps) if w[0].endswith("/opsdrill") and w[1] == "gameday"]
    args = build_parser().parse_args([a.replace("$TARGET", "docker:p") for a in words])
    assert args.target == "docker:p" and not getattr(args, "suite", None), words
    plan = ROOT / args.plan_file
    assert GameDayPlan.load(plan), f"{plan} does not load"
    env = yaml.safe_load(GATE.read_text())["env"]
    assert env["TARGET"].startswith("docker:") and env["TARGET"].endswith(env["P"])


def test_pytest_options_it_passes_are_registered(steps: list[dict[str, Any]]) -> None:
    argv = [sys.executable, "-m", "pytest", "--help", "-p", "no:cacheprovider"]
    helped = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120).stdout
    options = {w.split("=")[0] for c in commands(steps) if c[0].endswith("/pytest") for w in c
               if w.startswith("--")}  # fmt: skip
    for option in options:
        assert re.search(rf"\s{re.escape(option)}[\s=,]", helped), f"pytest has no {option}"


def test_compose_up_and_down_use_the_project_and_down_always_runs(
    steps: list[dict[str, Any]],
) -> None:
    compose = [(s, w) for s in steps for w in commands([s]) if w[0] == "docker-compose"]
    up = [w for _, w in compose if "up" in w]
    down = [(s, w) for s, w in compose if "down" in w]
    assert up and all(w[1:3] == ["-p", "$P"] and "system/compose.yaml" in w for w in up)
    assert (ROOT / "system" / "compose.yaml").exists()
    ((step, words),) = down
    assert step.get("if") == "always()" and "-v" in words and words[1:3] == ["-p", "$P"]
    assert steps[-1] is step, "the stack goes down last, after the reports are kept"
    kept = [s for s in steps if "upload-artifact" in str(s.get("uses", ""))]
    assert kept and kept[0].get("if") == "always()"
