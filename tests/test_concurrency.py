"""Sessions that run at the same time: each case uses two real processes, never a mock.

- rollback at session start reverts only what a dead runner left; a live drill is named and
  left alone;
- a drill holds the target's lock: a second session's drill waits, or refuses naming the
  holder's pid;
- under `pytest -n 2` one worker starts the stack and it is stopped only after both finished.
"""

from __future__ import annotations

import http.server
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from opsdrill.exitcodes import ExitCode
from opsdrill.faults.journal import Journal
from opsdrill.faults.rollback import rollback
from opsdrill.targets.local import LocalTarget
from tests.conftest import world_traversable_tmpdir
from tests.test_fault_journal import FlagFile

TESTS = Path(__file__).resolve().parent


def wait_for(path: Path, proc: subprocess.Popen[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, f"the process ended early: {proc.communicate()[0][-2000:]}"
        assert time.monotonic() < deadline, f"{path} did not appear within {timeout} s"
        time.sleep(0.05)


# -- rollback ----------------------------------------------------------------------------


def test_rollback_leaves_a_live_drill_alone_and_reverts_it_once_its_runner_is_gone(
    tmp_path: Path,
) -> None:
    flag, ready = tmp_path / "flag", tmp_path / "ready"
    code = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        sys.path.insert(0, {str(TESTS)!r})
        from test_fault_journal import FlagFile
        from opsdrill.targets.local import LocalTarget
        with FlagFile(LocalTarget(Path({str(tmp_path)!r})), path={str(flag)!r}):
            Path({str(ready)!r}).touch()
            time.sleep(120)
        """
    )
    drill = subprocess.Popen([sys.executable, "-c", code], text=True, stdout=subprocess.PIPE)
    try:
        wait_for(ready, drill)
        said: list[str] = []
        assert rollback(LocalTarget(tmp_path), say=said.append) == []
        assert flag.exists(), "a live drill's fault was reverted under it"
        assert said == [
            f"left alone: test_flag_file(path={flag}) belongs to pid {drill.pid}, "
            "which is still running its drill"
        ]
    finally:
        drill.send_signal(signal.SIGKILL)
        drill.wait(10)
    said.clear()
    assert rollback(LocalTarget(tmp_path), say=said.append) == [f"test_flag_file(path={flag})"]
    assert not flag.exists() and Journal(tmp_path).entries() == []
    assert f"left by pid {drill.pid}" in said[0]


def test_a_recycled_pid_does_not_keep_a_fault_alive(tmp_path: Path) -> None:
    """The pid is alive (it is ours), but its start time is not the runner's: revert."""
    flag = tmp_path / "flag"
    fault = FlagFile(LocalTarget(tmp_path), path=str(flag))
    fault.entry.runner_ticks = 1  # the runner that wrote it started at boot and is gone
    fault.inject()
    assert rollback(LocalTarget(tmp_path), say=lambda _l: None) == [f"test_flag_file(path={flag})"]
    assert not flag.exists()


# -- the drill lock ------------------------------------------------------------------------


@pytest.fixture
def staging(tmp_path: Path) -> Iterator[Path]:
    """A target file (production = false) naming a real HTTP server on this machine."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    spec = tmp_path / "staging.toml"
    url = f"http://127.0.0.1:{server.server_address[1]}"
    spec.write_text(f'name = "staging"\nproduction = false\n[endpoints]\napi_url = "{url}"\n')
    try:
        yield spec
    finally:
        server.shutdown()


DRILL = """
import os, time
from pathlib import Path
import pytest

pytestmark = pytest.mark.destructive

def test_drill(target):
    Path(os.environ["HELD"]).touch()
    deadline = time.monotonic() + 60
    while not Path(os.environ["RELEASE"]).exists():
        assert time.monotonic() < deadline
        time.sleep(0.05)
"""


def pytest_session(spec: Path, tmp: Path, *args: str, **env: str) -> subprocess.Popen[str]:
    (tmp / "test_drill.py").write_text(DRILL)
    argv = [sys.executable, "-m", "pytest", str(tmp / "test_drill.py"), "--target", str(spec),
            "--allow-destructive", "-p", "no:cacheprovider", "-q", "-s", *args]  # fmt: skip
    return subprocess.Popen(argv, cwd=tmp, env={**os.environ, "PYTHONUNBUFFERED": "1", **env},
                            text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip


def test_a_second_drill_waits_for_the_first_then_refuses_naming_its_pid(
    staging: Path, tmp_path: Path
) -> None:
    first_dir, second_dir = tmp_path / "a", tmp_path / "b"
    first_dir.mkdir(), second_dir.mkdir()
    held, release = tmp_path / "held", tmp_path / "release"
    first = pytest_session(staging, first_dir, HELD=str(held), RELEASE=str(release))
    try:
        wait_for(held, first)
        t0 = time.monotonic()
        second = pytest_session(staging, second_dir, "--lock-wait", "2",
                                HELD=str(tmp_path / "x"), RELEASE=str(release))  # fmt: skip
        out = second.communicate(timeout=120)[0]
        waited = time.monotonic() - t0
        assert second.returncode == ExitCode.USAGE, out[-2000:]
        assert f"is held by pid {first.pid} (" in out, out[-2000:]
        assert "waited 2 s" in out and waited >= 2, out[-2000:]
        assert not (tmp_path / "x").exists(), "the refused drill ran anyway"

        third = pytest_session(staging, second_dir, "--lock-wait", "60",
                               HELD=str(tmp_path / "y"), RELEASE=str(release))  # fmt: skip
        assert third.stdout is not None
        for line in iter(third.stdout.readline, ""):  # until it says it waits (or it ends)
            if "waiting up to 60 s for the state of target 'staging'" in line:
                break
        assert f"held by pid {first.pid} (" in line, "the third session never waited"
        assert not (tmp_path / "y").exists(), "the third drill ran while the first held it"
        release.touch()
        out = third.communicate(timeout=120)[0]
        assert third.returncode == ExitCode.OK, out[-2000:]
        assert (tmp_path / "y").exists()
    finally:
        release.touch()
        first.communicate(timeout=60)
    assert first.returncode == ExitCode.OK


# -- one stack for every xdist worker ------------------------------------------------------

SHARED = """
import json, os, time
from pathlib import Path

def test_share(target):
    worker = os.environ["PYTEST_XDIST_WORKER"]
    Path(f"{worker}.json").write_text(json.dumps({"api": target.service("api").pid()}))
    if worker != "gw1":
        return
    # gw1 outlives gw0: wait until gw0's whole session, its target's teardown included, is over
    deadline = time.monotonic() + 300
    while not Path("gw0.finished").exists():
        assert time.monotonic() < deadline, "gw0 never finished"
        time.sleep(0.1)
    assert target.is_up(), "the stack was stopped while another worker still used it"
"""
#: session-scoped fixtures are torn down with the last test, before the session finishes
CONFTEST = """
import os
from pathlib import Path

def pytest_sessionfinish(session):
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker:
        Path(f"{worker}.finished").touch()
"""


@pytest.mark.slow
def test_under_xdist_one_worker_starts_the_stack_and_the_last_one_stops_it() -> None:
    where = world_traversable_tmpdir("opsdrill-xdist-")
    (where / "test_shared.py").write_text(SHARED)
    (where / "conftest.py").write_text(CONFTEST)
    state = where / ".opsdrill"
    try:
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-n", "2", "--dist", "each", "test_shared.py",
             "--target", "local", "-p", "no:cacheprovider", "-q"],
            cwd=where, capture_output=True, text=True, timeout=900, check=False,
        )  # fmt: skip
        assert done.returncode == ExitCode.OK, done.stdout[-3000:] + done.stderr[-2000:]
        said = (state / "logs" / "sessions.log").read_text().splitlines()
        assert len(said) == 2, f"not exactly one start and one stop: {said}"
        assert f"no stack in {state} yet: starting one for this session" in said[0]
        assert "stopped the stack a session started" in said[1]
        seen = [json.loads((where / f"gw{i}.json").read_text()) for i in (0, 1)]
        assert seen[0]["api"] == seen[1]["api"] is not None, f"two stacks started: {seen}"
        after = LocalTarget(state).status()
        assert not [s.name for s in after if s.running], "the session left its stack running"
    finally:
        if (state / "state.json").exists():
            LocalTarget(state).destroy()
        shutil.rmtree(where, ignore_errors=True)
