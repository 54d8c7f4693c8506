"""The staging game day over ssh: `opsdrill gameday` against a host booted from the image,
with a `production = false` target file (examples/staging.toml's shape) and gameday-host.yaml's
plan. Checks, drills through systemd (SIGKILL, stop/start/restart, MemoryMax, disk full on the
host's data filesystem, CPU hogs, a port held, a broken config, §5.3.2's restore, latency and
resets on the host's Toxiproxy) and the load gate must end PASSED; the only skips it may show
are those the plan excuses for what the host lacks (GPU, MLflow, Redis, Ray, an alert sink of
opsdrill's)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.host.conftest import ROOT, Host

pytestmark = [pytest.mark.host, pytest.mark.slow, pytest.mark.gameday]


def test_staging_game_day_over_ssh_passes(systemd_host: Host, tmp_path: Path) -> None:
    spec = systemd_host.target_file("staging", production=False)
    path = os.pathsep.join([str(ROOT), str(ROOT / "system"), os.environ.get("PYTHONPATH", "")])
    t0 = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "opsdrill", "gameday", "--target", str(spec),
         "--plan-file", str(ROOT / "gameday-host.yaml"), "--reports", str(tmp_path / "reports")],
        cwd=ROOT, env={**os.environ, **systemd_host.env, "PYTHONPATH": path},
        capture_output=True, text=True, timeout=3600,
    )  # fmt: skip
    wall = time.monotonic() - t0
    print(done.stdout[-4000:])
    print(f"\n[host] staging game day over ssh: {wall:.0f} s")
    assert done.returncode == 0, f"game day not PASSED:\n{done.stdout[-5000:]}{done.stderr[-1500:]}"
    (run,) = (tmp_path / "reports").glob("gameday-*")
    summary = json.loads((run / "summary.json").read_text())
    assert summary["verdict"] == "PASSED"
    assert all(s["expected"] for s in summary["skips"]), summary["skips"]
    drills = {d["drill"]: d for d in summary["drills"]}
    for name in ("app-sigkill", "db-sigkill", "host-oom", "disk-full", "cpu-hog", "db-latency"):
        assert drills[name]["passed"], drills.get(name)
