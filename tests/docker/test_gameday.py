"""`opsdrill gameday --target docker:PROJECT` end to end on the composed stack, with a small
plan: the security checks, the lock-contention and pool-exhaustion drills (real blocking and
idle sessions in the db container, ended by the runbook's procedures) and the GPU drill, which
the composed stack cannot run here: it is skipped at collection naming the capability, expected
by the plan, and never counted as a pass."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.docker.conftest import ROOT, ComposedStack

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.gameday]

SUITE_FILES = ["conftest.py", "pyproject.toml", "checks/conftest.py", "checks/test_security.py",
               "chaos/__init__.py", "chaos/test_lock_contention.py",
               "chaos/test_pool_exhaustion.py", "chaos/test_gpu_oom.py"]  # fmt: skip
PLAN = """\
version: 1
expected_skips:
  - test: "chaos/test_gpu_oom.py::*"
    when: no_cuda
    skip_message: "*needs gpu*"
    reason: no CUDA where the composed stack runs
"""


def test_gameday_on_the_composed_stack(composed: ComposedStack, tmp_path: Path) -> None:
    suites = tmp_path / "suites"
    for name in SUITE_FILES:
        (suites / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, suites / name)
    (tmp_path / "plan.yaml").write_text(PLAN)
    path = os.pathsep.join([str(ROOT), str(ROOT / "system"), os.environ.get("PYTHONPATH", "")])
    done = subprocess.run(
        [sys.executable, "-m", "opsdrill", "gameday", "--target", composed.spec,
         "--suites-dir", str(suites), "--plan-file", str(tmp_path / "plan.yaml"),
         "--suite", "checks", "--suite", "chaos", "--reports", str(tmp_path / "reports")],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": path, "OPSDRILL_STATE_HOME": str(tmp_path)},
        capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    print(done.stdout[-3000:])
    assert done.returncode == 0, f"game day not PASSED:\n{done.stdout[-4000:]}{done.stderr[-1500:]}"
    (run,) = (tmp_path / "reports").glob("gameday-*")
    summary = json.loads((run / "summary.json").read_text())
    assert summary["verdict"] == "PASSED"
    chaos = next(s for s in summary["suites"] if s["name"] == "chaos")
    assert chaos["tests"] == 3 and chaos["skipped"] == 1 and chaos["failures"] == 0, chaos
    (skip,) = summary["skips"]
    assert skip["expected"] and "needs gpu" in skip["message"], skip
    drills = {d["drill"]: d for d in summary["drills"]}
    assert set(drills) == {"lock-contention", "pool-exhaustion"}, drills
    assert all(d["passed"] and d["mttd_seconds"] is not None for d in drills.values()), drills
    assert not any("gpu" in name for name in drills), "a skipped drill is not a pass"
    md = (run / "summary.md").read_text()
    assert "**PASSED**" in md and f"on the compose target `{composed.spec}`" in md, md[:600]
    for name, d in drills.items():
        print(f"[gameday] {name}: MTTD {d['mttd_seconds']} s  MTTR {d['mttr_seconds']} s")
