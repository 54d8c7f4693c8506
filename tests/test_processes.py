"""Process identity: a pid is only signalled while it still names the process we started."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

from opsdrill.processes import ProcessRef, pid_alive, spawn, start_ticks


def _sleeper(tmp_path: Path, seconds: int = 30) -> ProcessRef:
    return spawn([sys.executable, "-c", f"import time; time.sleep({seconds})"], log=tmp_path / "l")


def test_spawned_process_is_alive_and_terminates(tmp_path: Path) -> None:
    ref = _sleeper(tmp_path)
    assert ref.alive() and pid_alive(ref.pid)
    ref.terminate(grace=5)
    assert not ref.alive()
    assert start_ticks(ref.pid) is None


def test_a_recycled_pid_is_not_ours(tmp_path: Path) -> None:
    ref = _sleeper(tmp_path)
    try:
        impostor = ProcessRef(ref.pid, ref.ticks + 1)  # same pid, another start time
        assert not impostor.alive()
        assert impostor.signal(signal.SIGKILL) is False
        assert ref.alive(), "signalling an impostor reference must not touch the real process"
    finally:
        ref.terminate(grace=5)


def test_kill_with_chosen_signal_and_wait(tmp_path: Path) -> None:
    ref = _sleeper(tmp_path)
    assert ref.signal(signal.SIGKILL)
    assert ref.wait_gone(5)
    assert ref.signal(signal.SIGTERM) is False, "a gone process reports False, never raises"


def test_terminate_escalates_to_sigkill(tmp_path: Path) -> None:
    code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"
    ref = spawn([sys.executable, "-c", code], log=tmp_path / "l")
    ready = start_ticks(ref.pid)
    assert ready is not None
    ref.terminate(grace=0.5)
    assert not ref.alive()


def test_spawn_writes_output_to_log(tmp_path: Path) -> None:
    log = tmp_path / "out.log"
    ref = spawn([sys.executable, "-c", "print('hello from child')"], log=log)
    ref.wait_gone(5)
    assert "hello from child" in log.read_text()
