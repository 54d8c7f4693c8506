"""`opsdrill gameday` end to end: up, the checks suite, a summary in reports/, down."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from opsdrill.targets.local import LocalTarget
from tests.conftest import world_traversable_tmpdir


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
    assert summary["passed"] is True
    [checks] = summary["suites"]
    assert checks["name"] == "checks" and checks["tests"] >= 3 and checks["failures"] == 0
    assert (run_dir / "summary.md").read_text().startswith("# Game day")
    assert (run_dir / "checks.xml").exists()
    target = LocalTarget(state)
    assert not any(s.is_running() for s in target.services.values()), "stack left running"
    target.destroy()
