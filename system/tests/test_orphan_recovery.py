"""Start-up orphan recovery's pieces: telling a worker that outlived its app, and its switch."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from nf_auto_runner import config, runs

SLEEPER = "import time; time.sleep(60)"


def _fake_worker(run_id: int, supervisor: str | None) -> subprocess.Popen[bytes]:
    """A process whose command line reads like `nf_auto_runner.worker RUN_ID`."""
    env = {k: v for k, v in os.environ.items() if k != "NF_SUPERVISOR_PID"}
    if supervisor is not None:
        env["NF_SUPERVISOR_PID"] = supervisor
    argv = [sys.executable, "-c", SLEEPER, "nf_auto_runner.worker", str(run_id)]
    proc = subprocess.Popen(argv, env=env)
    deadline = time.monotonic() + 10
    while b"nf_auto_runner.worker" not in Path(f"/proc/{proc.pid}/cmdline").read_bytes():
        assert time.monotonic() < deadline, "the fake worker never exec'd"
        time.sleep(0.01)  # between fork and exec /proc shows the parent's command line
    return proc


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for p in started:
        p.kill()
        p.wait()


def test_a_worker_under_its_supervisor_is_left_alone(procs: list) -> None:
    procs.append(p := _fake_worker(7, str(os.getpid())))
    assert runs.worker_state(p.pid, 7) == "supervised"


def test_a_worker_whose_supervisor_is_not_its_parent_is_orphaned(procs: list) -> None:
    procs.append(p := _fake_worker(7, "1"))  # as after the app died: parent != supervisor
    assert runs.worker_state(p.pid, 7) == "orphaned"


def test_a_recycled_pid_or_another_run_is_never_judged(procs: list) -> None:
    procs.append(p := _fake_worker(7, "1"))
    assert runs.worker_state(p.pid, 8) == "unknown", "another run's worker: not ours to kill"
    assert runs.worker_state(os.getpid(), 7) == "unknown", "pytest is no worker"


def test_a_dead_pid_is_gone() -> None:
    p = _fake_worker(7, "1")
    p.kill()
    p.wait()
    assert runs.worker_state(p.pid, 7) == "gone"


@pytest.mark.parametrize(("raw", "expected"), [("0", False), ("off", False), ("1", True)])
def test_start_up_recovery_switch(raw: str, expected: bool, tmp_path) -> None:
    env = {"NF_HOME": str(tmp_path), "NF_ORPHAN_RECOVERY_AT_START": raw}
    assert config.load(env).orphan_recovery_at_start is expected
    assert config.load({"NF_HOME": str(tmp_path)}).orphan_recovery_at_start is True


def test_a_bad_switch_value_says_what_to_set(tmp_path) -> None:
    env = {"NF_HOME": str(tmp_path), "NF_ORPHAN_RECOVERY_AT_START": "maybe"}
    with pytest.raises(config.ConfigError, match="expected bool; set 1 or 0"):
        config.load(env)
