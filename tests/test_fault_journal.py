"""The fault journal survives a SIGKILLed runner, and rollback reverts what it holds."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import ClassVar

import pytest

from opsdrill.errors import RevertFailed
from opsdrill.faults.base import Fault, register
from opsdrill.faults.journal import Journal
from opsdrill.faults.rollback import rollback
from opsdrill.targets.local import LocalTarget


@register
class FlagFile(Fault):
    """A harmless fault for testing the machinery: a file exists while it is active."""

    kind = "test_flag_file"
    calls: ClassVar[list[str]] = []

    def _inject(self) -> None:
        path = Path(self.params["path"])
        self.save_undo(path=str(path))
        path.write_text("broken")
        if self.params.get("fail_inject"):
            raise RuntimeError("inject failed half-way")

    def _revert(self) -> None:
        if self.params.get("fail_revert"):
            raise OSError("revert cannot reach the target")
        Path(self.params["path"]).unlink(missing_ok=True)


def test_context_manager_injects_and_reverts(tmp_path: Path) -> None:
    target = LocalTarget(tmp_path)
    flag = tmp_path / "flag"
    with FlagFile(target, path=str(flag)) as fault:
        assert flag.exists()
        [entry] = Journal(tmp_path).entries()
        assert entry.kind == "test_flag_file" and entry.phase == "injected"
        assert entry.undo == {"path": str(flag)}
        assert fault.active
    assert not flag.exists()
    assert Journal(tmp_path).entries() == []


def test_revert_runs_when_the_body_raises_and_twice_is_harmless(tmp_path: Path) -> None:
    target = LocalTarget(tmp_path)
    flag = tmp_path / "flag"
    fault = FlagFile(target, path=str(flag))
    with pytest.raises(ZeroDivisionError), fault:
        1 / 0  # noqa: B018
    assert not flag.exists()
    fault.revert()  # second call: no-op
    assert Journal(tmp_path).entries() == []


def test_half_done_inject_is_reverted(tmp_path: Path) -> None:
    target = LocalTarget(tmp_path)
    flag = tmp_path / "flag"
    with pytest.raises(RuntimeError), FlagFile(target, path=str(flag), fail_inject=True):
        pass
    assert not flag.exists()
    assert Journal(tmp_path).entries() == []


def test_failed_revert_keeps_the_entry_and_says_what_to_do(tmp_path: Path) -> None:
    target = LocalTarget(tmp_path)
    fault = FlagFile(target, path=str(tmp_path / "flag"), fail_revert=True)
    fault.inject()
    with pytest.raises(RevertFailed, match="opsdrill rollback"):
        fault.revert()
    assert len(Journal(tmp_path).entries()) == 1


def test_sigkilled_runner_leaves_a_journal_that_rollback_reverts(tmp_path: Path) -> None:
    flag = tmp_path / "flag"
    code = textwrap.dedent(
        f"""
        import sys, time
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from pathlib import Path
        from test_fault_journal import FlagFile
        from opsdrill.targets.local import LocalTarget
        fault = FlagFile(LocalTarget(Path({str(tmp_path)!r})), path={str(flag)!r})
        with fault:
            print("injected", flush=True)
            time.sleep(60)
        """
    )
    runner = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert runner.stdout is not None
    assert runner.stdout.readline().strip() == "injected"
    runner.send_signal(signal.SIGKILL)
    runner.wait(10)
    assert flag.exists(), "SIGKILL cannot run the revert: the fault must still be there"
    [entry] = Journal(tmp_path).entries()
    assert entry.runner_pid == runner.pid
    said: list[str] = []
    reverted = rollback(LocalTarget(tmp_path), say=said.append)
    assert reverted == [f"test_flag_file(path={flag})"]
    assert not flag.exists()
    assert Journal(tmp_path).entries() == []
    assert f"left by pid {runner.pid}" in said[0]


def test_journal_entries_are_whole_json_files(tmp_path: Path) -> None:
    fault = FlagFile(LocalTarget(tmp_path), path=str(tmp_path / "f"))
    fault.inject()
    try:
        files = list((tmp_path / "faults").glob("*.json"))
        assert len(files) == 1
        data = json.loads(files[0].read_text())
        assert data["kind"] == "test_flag_file"
        assert oct(files[0].stat().st_mode & 0o777) == "0o600"
        assert time.time() - data["created_at"] < 60
    finally:
        fault.revert()
