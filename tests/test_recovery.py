"""The runbook's recovery procedures (opsdrill.recovery) against a real embedded stack."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from opsdrill.plugin.waiting import until
from opsdrill.probes.http import http_ok
from opsdrill.probes.sql import waiting_sessions
from opsdrill.processes import ProcessRef, spawn, start_ticks
from opsdrill.recovery.blocking_sessions import blocking_pids, terminate_blockers
from opsdrill.recovery.idle_sessions import terminate_idle
from opsdrill.recovery.port_owner import listeners, listening_pids
from opsdrill.recovery.service_restart import app_pid_file, restart_service
from opsdrill.targets.local import LocalTarget
from opsdrill.targets.local.pid_file import leftover_pid

SLEEPER = "import time; time.sleep(120)"


# -- no stack needed -----------------------------------------------------------------------


def test_port_owner_finds_the_listening_pid_from_proc(tmp_path: Path) -> None:
    target = LocalTarget(tmp_path)
    with socket.socket() as listener, socket.socket() as client:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        assert listening_pids(port) == [os.getpid()]
        # the same, read where the app binds its port (here: this machine) through exec
        ((pid, ticks, command),) = listeners(target, port)
        assert pid == os.getpid() and ticks == start_ticks(pid) and "pytest" in command
        client.connect(("127.0.0.1", port))  # a connected socket is not a listener
        assert listening_pids(client.getsockname()[1]) == []
        assert listeners(target, client.getsockname()[1]) == []


@pytest.fixture
def sleepers(tmp_path: Path) -> Iterator[Callable[[Path], ProcessRef]]:
    """Processes whose command line mentions the app, as `pkill -f` would see them."""
    started: list[ProcessRef] = []

    def start(cwd: Path) -> ProcessRef:
        ref = spawn([sys.executable, "-c", SLEEPER, "nf_auto_runner.app.main"],
                    log=tmp_path / "sleeper.log", cwd=cwd)  # fmt: skip
        started.append(ref)
        until(lambda: Path(f"/proc/{ref.pid}/cmdline").read_bytes().count(b"\0") > 2, 5,
                 "sleeper running")  # fmt: skip
        return ref

    yield start
    for ref in started:
        ref.signal(signal.SIGKILL)


def test_leftover_pid_is_only_this_homes_app(
    tmp_path: Path, sleepers: Callable[[Path], ProcessRef]
) -> None:
    home, elsewhere = tmp_path / "home", tmp_path / "other"
    home.mkdir()
    elsewhere.mkdir()
    pid_file = home / "run" / "app.pid"
    pid_file.parent.mkdir()
    stranger = sleepers(elsewhere)
    pid_file.write_text(f"{stranger.pid}\n")
    assert leftover_pid(pid_file, home) is None, "a process of another home is not ours"
    ours = sleepers(home)
    pid_file.write_text(f"{ours.pid}\n")
    assert leftover_pid(pid_file, home) == ours.pid
    pid_file.write_text("999999999\n")
    assert leftover_pid(pid_file, home) is None


# -- on the embedded stack -----------------------------------------------------------------


@pytest.mark.slow
def test_restart_kills_the_leftover_by_pid_file_and_spares_lookalikes(
    stack: LocalTarget, sleepers: Callable[[Path], ProcessRef], tmp_path: Path
) -> None:
    stack.service("api").stop()
    leftover = sleepers(stack.home)  # an old app instance the state no longer knows
    app_pid_file(stack).write_text(f"{leftover.pid}\n")
    lookalike = sleepers(tmp_path)  # `pkill -9 -f nf_auto_runner` would kill this too
    actions = restart_service(stack, polls=120, interval=0.5)  # the runbook's 60 s budget
    assert not leftover.alive(), "the leftover named by the pid file must be killed"
    assert lookalike.alive(), "a process that merely matches the name must survive"
    assert any(f"killed leftover pid {leftover.pid}" in a for a in actions), actions
    assert http_ok(f"{stack.endpoints.api_url}/health")
    assert app_pid_file(stack).read_text().strip() == str(stack.service("api").pid())


@pytest.fixture
def admin(stack: LocalTarget) -> str:
    return stack.endpoints.admin_dsn or ""


def _alive_sessions(admin: str, name: str) -> int:
    with psycopg.connect(admin, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (name,)
        ).fetchone()
    return int(row[0]) if row else 0


@pytest.mark.slow
def test_terminate_idle_ends_only_sessions_idle_past_the_threshold(
    stack: LocalTarget, admin: str
) -> None:
    def session(name: str) -> psycopg.Connection[Any]:
        return psycopg.connect(stack.endpoints.dsn, autocommit=True, application_name=name)

    old = [session("test-idle-old") for _ in range(3)]
    busy = psycopg.connect(stack.endpoints.dsn, application_name="test-in-transaction")
    busy.execute("SELECT 1")  # idle in transaction: not "idle", not the runbook's target
    try:
        with psycopg.connect(admin, autocommit=True) as conn:
            until(lambda: conn.execute(
                "SELECT bool_and(state_change < now() - interval '1 second') "
                "FROM pg_stat_activity WHERE application_name = 'test-idle-old'"
            ).fetchone()[0], 10, "sessions idle for 1 s")  # fmt: skip
        fresh = session("test-idle-fresh")
        actions = terminate_idle(admin, idle_for=1.0)
        assert "test-idle-old" in actions[0]
        assert _alive_sessions(admin, "test-idle-old") == 0
        assert _alive_sessions(admin, "test-idle-fresh") == 1
        assert _alive_sessions(admin, "test-in-transaction") == 1
        fresh.close()
    finally:
        for conn in [*old, busy]:
            with contextlib.suppress(Exception):
                conn.close()
    until(lambda: http_ok(f"{stack.endpoints.api_url}/health"), 30, "/health 200")


@pytest.mark.slow
def test_terminate_blockers_ends_the_head_of_the_lock_queue_only(
    stack: LocalTarget, admin: str
) -> None:
    assert terminate_blockers(admin) == [
        "§5.2.2 fix 3: no session is waiting on a lock; nothing terminated"
    ]
    blocker = psycopg.connect(admin, application_name="test-blocker")
    blocker.execute("LOCK TABLE runs IN ACCESS EXCLUSIVE MODE")
    waited: list[int] = []

    def wait_on_lock() -> None:
        with psycopg.connect(admin, autocommit=True, application_name="test-waiter") as conn:
            waited.append(int(conn.execute("SELECT count(*) FROM runs").fetchone()[0]))

    waiter = threading.Thread(target=wait_on_lock)
    waiter.start()
    try:
        until(lambda: waiting_sessions(admin), 10, "a session waits on the lock")
        assert blocking_pids(admin) == [blocker.info.backend_pid]
        actions = terminate_blockers(admin)
        assert f"pid {blocker.info.backend_pid} (test-blocker" in actions[0], actions
        waiter.join(10)
        assert waited, "the waiter must get its answer once the blocker is gone"
        assert _alive_sessions(admin, "test-blocker") == 0
    finally:
        with contextlib.suppress(Exception):
            blocker.close()
        waiter.join(10)


def test_restart_service_fails_loudly_when_health_never_answers(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A started app whose /health never answers 200 ends in ServiceError, not silence."""
    from opsdrill.errors import ServiceError
    from opsdrill.recovery import service_restart

    class FakeApi:
        def pid(self) -> None:
            return None

        def healthy(self) -> bool:
            return False

        def stop(self, timeout: float = 30) -> None:
            pass

        def start(self, timeout: float = 60) -> None:
            pass

    target = LocalTarget(tmp_path)
    monkeypatch.setattr(LocalTarget, "service", lambda self, name: FakeApi())
    monkeypatch.setattr(service_restart, "http_ok", lambda url: False)
    with pytest.raises(ServiceError, match="did not answer 200 in 3 polls"):
        restart_service(target, polls=3, interval=0.01)


# -- §5.2.5 CPU: top, then kill by pid -------------------------------------------------------

BUSY = "import time\nend = time.monotonic() + 60\nwhile time.monotonic() < end: pass"


def test_top_finds_busy_processes_in_scope_and_kills_them_by_pid(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from opsdrill.recovery.cpu_hogs import kill_offenders, offenders

    target = LocalTarget(tmp_path / "stack")
    scope, elsewhere = target.process_scope, tmp_path / "other"
    hog = spawn([sys.executable, "-c", BUSY], log=scope / "logs" / "hog.log")
    stranger = spawn([sys.executable, "-c", BUSY], log=elsewhere / "busy.log")
    spared = spawn([sys.executable, "-c", BUSY], log=scope / "logs" / "service.log")
    # the stack's service: a busy process that top must leave alone
    monkeypatch.setattr(LocalTarget, "stack_pids", lambda self, service: {spared.pid})
    try:
        found = offenders(target, scope)
        assert [u.pid for u in found] == [hog.pid], "only the busy process in scope, not spared"
        actions = kill_offenders(target, found)
        assert actions[0].startswith(f"killed pid {hog.pid} "), actions
        assert hog.wait_gone(5) and stranger.alive() and spared.alive()
        assert offenders(target, scope) == []
    finally:
        for ref in (hog, stranger, spared):
            ref.signal(signal.SIGKILL)
