"""Resource and network faults against a real stack: a runner SIGKILLed mid-fault leaves
nothing behind once `opsdrill rollback` has run (no ballast, no lowered cgroup limit, no toxic).

One stack with the opt-ins (data filesystem, proxy, worker cgroup) is shared by this module;
it is started without training, since none of these checks needs a model.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from opsdrill.faults.journal import Journal
from opsdrill.faults.network import toxics_on
from opsdrill.plugin.waiting import until
from opsdrill.probes.http import http_ok
from opsdrill.targets.local import DataFilesystem, LocalTarget

from .conftest import world_traversable_tmpdir

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or DataFilesystem.supported() is not None,
    reason="needs root for the loop-mounted data filesystem and the worker cgroup",
)

UNLIMITED_V1 = 9223372036854771712  # v1's "no limit": LONG_MAX rounded down to a page

RUNNER = """
import json, sys, time
from pathlib import Path
import opsdrill.faults as faults
from opsdrill.targets.local import LocalTarget
target = LocalTarget(Path(sys.argv[1]))
fault = faults.REGISTRY[sys.argv[2]](target, **json.loads(sys.argv[3]))
fault.inject()
print("injected", json.dumps(fault.entry.undo), flush=True)
time.sleep(600)
"""

CASES: dict[str, dict[str, Any]] = {
    "disk_full": {},
    "host_oom": {"limit_mb": 100},
    "net_latency": {"proxy": "postgres", "latency": 300, "jitter": 50},
    "net_timeout": {"proxy": "api", "timeout": 0},
    "net_reset_peer": {"proxy": "postgres", "timeout": 0},
    "net_bandwidth": {"proxy": "api", "rate": 1, "stream": "downstream"},
}


@pytest.fixture(scope="module")
def opt_in_stack() -> Iterator[LocalTarget]:
    state = world_traversable_tmpdir("opsdrill-faults-") / "state"
    # no MLflow: none of these faults touches it, and its start is ~30 s of a loaded 2-core CI
    target = LocalTarget(state, monitoring=False, data_fs_size="64m", proxy=True, mlflow=False)
    target.up(train=False, say=lambda line: print(f"[stack] {line}"))
    try:
        yield target
    finally:
        target.destroy()
        assert not os.path.ismount(state / "home"), "destroy left the data filesystem mounted"


def _steady(target: LocalTarget) -> bool:
    return http_ok(f"{target.endpoints.api_url}/health", timeout=2.0)


@pytest.mark.parametrize("kind", sorted(CASES))
def test_sigkill_mid_fault_then_rollback_restores_steady_state(
    opt_in_stack: LocalTarget, kind: str
) -> None:
    target = opt_in_stack
    until(lambda: _steady(target), 30, "the stack steady before the fault")
    runner = subprocess.Popen(
        [sys.executable, "-c", RUNNER, str(target.state_dir), kind, json.dumps(CASES[kind])],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        line = runner.stdout.readline()  # type: ignore[union-attr]
        assert line.startswith("injected"), f"runner said {line!r}"
        undo = json.loads(line.split(" ", 1)[1])
        _assert_fault_present(target, kind, undo)
    finally:
        runner.kill()  # SIGKILL: no finally, no revert in the runner
        runner.wait()
    assert Journal(target.state_dir).entries(), "the killed runner's journal entry is missing"
    done = subprocess.run(
        [sys.executable, "-m", "opsdrill", "rollback", "--state-dir", str(target.state_dir)],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "1 fault(s) reverted" in done.stdout, done.stdout
    assert Journal(target.state_dir).entries() == []
    _assert_fault_gone(target, kind, undo)
    until(lambda: _steady(target), 30, "/health 200 after rollback")


def _assert_fault_present(target: LocalTarget, kind: str, undo: dict[str, Any]) -> None:
    if kind == "disk_full":
        assert Path(undo["ballast"]).exists()
        assert not http_ok(f"{target.endpoints.api_url}/health"), "/health ignores a full disk"
    elif kind == "host_oom":
        assert undo["previous_limit"] is None, "the workers' limit was not unlimited before"
        assert target.memory("worker").limit_bytes == 100 * 2**20
    else:
        assert undo["toxic"] in toxics_on(undo["url"], CASES[kind]["proxy"])


def _assert_fault_gone(target: LocalTarget, kind: str, undo: dict[str, Any]) -> None:
    if kind == "disk_full":
        assert not Path(undo["ballast"]).exists(), "the ballast file survived the rollback"
    elif kind == "host_oom":
        assert target.memory("worker").limit_bytes is None, "the limit stayed lowered"
        cgroup = target.worker_cgroup
        assert cgroup is not None and cgroup.limits().get("memsw") in (None, str(UNLIMITED_V1))
    else:
        for proxy in ("postgres", "api"):
            assert toxics_on(undo["url"], proxy) == [], f"a toxic is left on {proxy}"
