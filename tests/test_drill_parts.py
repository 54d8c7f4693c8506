"""Drills put in place what a plainly started stack lacks, and leave its wiring as it was.

The README's "run it alone" command must not skip the headline drills: on a stack started
without `--proxy` and `--data-fs-size`, the network drills get Toxiproxy between the app and
PostgreSQL and the disk drill gets a size-limited data filesystem, for the session only. A run
SIGKILLed while those parts are in place leaves them journaled, and `opsdrill rollback` takes
them out.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from opsdrill.errors import CapabilityMissing
from opsdrill.faults.journal import Journal
from opsdrill.plugin.waiting import until
from opsdrill.probes.http import http_ok
from opsdrill.targets.base import Target
from opsdrill.targets.drill_parts import DrillParts

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="the data filesystem is a loop mount, which needs root"
)

HOLDER = """
import sys, time
from pathlib import Path
from opsdrill.targets import parse_spec
target = parse_spec("local:" + sys.argv[1])
with target.ensure_proxy(say=print) as hops, target.ensure_data_fs("64m", say=print) as home:
    print("in place", hops.toxiproxy_url, home, flush=True)
    time.sleep(600)
"""


def wiring(state_dir: Path) -> dict[str, object]:
    """What a drill may change and must give back: options, the app's DSN, mounts, services."""
    services = json.loads((state_dir / "state.json").read_text())["services"]
    environ = Path(f"/proc/{services['api']['pid']}/environ").read_bytes().split(b"\0")
    dsn = next(e for e in environ if e.startswith(b"DATABASE_URL=")).decode()
    return {
        "options": json.loads((state_dir / "options.json").read_text()),
        "app_dsn": dsn,
        "home_is_mount": os.path.ismount(state_dir / "home"),
        "services": sorted(services),
        "image": (state_dir / "data-fs.img").exists(),
    }


def test_a_target_without_the_parts_says_which_capability_is_missing() -> None:
    class Bare(DrillParts):
        name = "bare"

    with pytest.raises(CapabilityMissing, match="cannot put Toxiproxy between its parts"):
        Bare().ensure_proxy()
    with pytest.raises(CapabilityMissing, match="size-limited filesystem"):
        Bare().ensure_data_fs("64m")


def test_sigkilled_holder_of_the_parts_is_undone_by_rollback(stack: Target) -> None:
    state_dir = str(stack.state_dir)  # type: ignore[attr-defined]
    before = wiring(stack.state_dir)  # type: ignore[attr-defined]
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, state_dir], stdout=subprocess.PIPE, text=True
    )
    try:
        lines = [holder.stdout.readline() for _ in range(3)]  # type: ignore[union-attr]
        assert lines[-1].startswith("in place"), lines
        during = wiring(stack.state_dir)  # type: ignore[attr-defined]
        assert during["options"]["proxy"] and during["options"]["data_fs_size"] == "64m"  # type: ignore[index]
        assert during["home_is_mount"] and "proxy" in during["services"]
        assert during["app_dsn"] != before["app_dsn"], "the app does not go through the proxy"
    finally:
        holder.kill()  # SIGKILL: the holder's context managers never exit
        holder.wait()
    assert len(Journal(Path(state_dir)).entries()) == 2
    done = subprocess.run(
        [sys.executable, "-m", "opsdrill", "rollback", "--state-dir", state_dir],
        capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 fault(s) reverted" in done.stdout, done.stdout
    assert wiring(stack.state_dir) == before  # type: ignore[attr-defined]
    until(lambda: http_ok(f"{stack.endpoints.api_url}/health"), 30, "/health 200")


def test_run_it_alone_runs_network_and_disk_drills_without_skips(
    stack: Target, tmp_path: Path
) -> None:
    state_dir = stack.state_dir  # type: ignore[attr-defined]
    before = wiring(state_dir)
    junit = tmp_path / "chaos.xml"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "chaos", f"--target=local:{state_dir}",
         "-k", "test_db_latency or disk", "--allow-destructive", "-p", "no:cacheprovider",
         f"--junitxml={junit}", f"--opsdrill-reports={tmp_path / 'reports'}", "-rs"],
        capture_output=True, text=True, check=False, timeout=900,
        cwd=Path(__file__).parents[1],
    )  # fmt: skip
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None, done.stdout[-3000:]
    counts = {k: int(suite.get(k, 0)) for k in ("tests", "skipped", "failures", "errors")}
    assert counts == {"tests": 2, "skipped": 0, "failures": 0, "errors": 0}, done.stdout[-3000:]
    assert done.returncode == 0, done.stdout[-3000:]
    assert "opsdrill: the stack has no Toxiproxy" in done.stdout
    assert "opsdrill: the stack has no size-limited data filesystem" in done.stdout
    assert wiring(state_dir) == before
    assert Journal(state_dir).entries() == []
