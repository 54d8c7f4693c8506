"""The session's `target`: reused exactly as it is, started only when none exists yet.

A harness that repairs the stack before checking it can never report a stopped service, so a
session never starts a service of a stack that exists: a stack that is partly or wholly down
is what the checks are there to report. A session creates a stack only when there is none yet
(plain `--target local` in a fresh checkout; announced in one line) and stops only a stack a
session created. An explicit state directory that does not exist is a typo, not a request
for a new stack.

Drills hold the target's state lock exclusively (checks hold it shared, see
`opsdrill.plugin.target_locks`): a drill never breaks the stack under another session's check or
drill. One that cannot get it within `--lock-wait` seconds ends the session naming the holder.

Under pytest-xdist every worker opens the target. A file lock beside the state directory lets
exactly one of them create the stack or revert the journal at a time; each registers itself
as a user (pid and start time, so a killed worker does not count), and the last user out
stops a stack a session created. Starting and stopping are also written, with the pid that
did it, to `<state dir>/logs/sessions.log`: workers' terminal lines are not shown.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from opsdrill.errors import OpsdrillError, TargetBusy, TargetUnreachable, UsageError
from opsdrill.exitcodes import ExitCode, exit_code_for
from opsdrill.faults.rollback import rollback
from opsdrill.plugin.target_locks import flocked, lock_file, state_lock
from opsdrill.processes import ProcessRef
from opsdrill.stack.api import ApiClient
from opsdrill.targets import parse_spec
from opsdrill.targets.base import Target
from opsdrill.targets.model import Say

__all__ = ["SessionTarget", "configured_target"]

_TARGET = pytest.StashKey[Target]()
#: how long a drill waits for another session's drill or checks by default (seconds)
LOCK_WAIT = 600.0


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("opsdrill").addoption(
        "--lock-wait", type=float, default=LOCK_WAIT, metavar="SECONDS",
        help="how long a drill waits for the target's lock held by another session "
             f"(default {LOCK_WAIT:g}); then the session ends naming the holder's pid",
    )  # fmt: skip


#: the one spec that may create its state directory: the README's "start one for me"
DEFAULT_SPEC = "local"
#: in the users directory: this stack was created by a session, so the last user stops it
STARTED = "started-by-session"
#: in <state dir>/logs/: who started and stopped the stack, and when
SESSIONS_LOG = "sessions.log"


class SessionTarget:
    """Owns the target for one session (one pytest process, or one xdist worker)."""

    def __init__(self, target: Target, *, may_create_dir: bool, say: Say) -> None:
        self.target = target
        self.may_create_dir = may_create_dir
        self.say = say
        self.home = target.state_home()
        self.me = ProcessRef.of(os.getpid())

    @property
    def _lock(self) -> Path:
        return lock_file("session", str(self.home))

    @property
    def _users(self) -> Path:
        return self._lock.with_suffix(".users")

    def _locked(self) -> contextlib.AbstractContextManager[None]:
        return flocked(self._lock, exclusive=True, timeout=None, what=f"the stack in {self.home}")

    def open(self) -> Target:
        """Revert what dead sessions left, create the stack if there is none; never repair."""
        if self.home is None:
            for machine in self.target.fleet():  # every host of a fleet, the first one first
                if (check_units := getattr(machine, "check_units", None)) is not None:
                    # a host over ssh: the login, the host key and the unit names are proven,
                    # so an API that does not answer there is a finding for the checks
                    check_units()
                else:
                    require_reachable(machine.endpoints.api_url)
            return self.target
        with self._locked():
            if not self.target.exists():
                self._create(self.home)
            rollback(self.target, say=self.say)
            self._users.mkdir(exist_ok=True)
            (self._users / self._name(self.me)).touch()
        return self.target

    def _create(self, home: Path) -> None:
        if not self.may_create_dir and not home.exists():
            raise UsageError(
                f"state directory {home} does not exist: check the path given to --target, "
                f"or create a stack there first with 'opsdrill up --state-dir {home}'"
            )
        line = f"no stack in {home} yet: starting one for this session (stopped at its end)"
        self.say(line)
        try:
            self.target.up(say=lambda _line: None)
        except BaseException:
            self.target.down(say=lambda _line: None)
            raise
        self._log(home, line)
        self._users.mkdir(exist_ok=True)
        (self._users / STARTED).touch()

    def close(self) -> None:
        """Unregister; the last user of a stack a session created stops it."""
        if self.home is None:
            return
        with self._locked():
            (self._users / self._name(self.me)).unlink(missing_ok=True)
            if self._live_users():
                return
            started = self._users / STARTED
            if started.exists():
                started.unlink()
                self.target.down(say=lambda _line: None)
                line = f"stopped the stack a session started in {self.home}; nobody uses it now"
                self.say(line)
                self._log(self.home, line)
            with contextlib.suppress(OSError):
                self._users.rmdir()  # nobody uses it now; leave no litter in the temp dir

    def _log(self, home: Path, line: str) -> None:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        (home / "logs").mkdir(parents=True, exist_ok=True)
        with open(home / "logs" / SESSIONS_LOG, "a") as log:
            log.write(f"{stamp} pid {os.getpid()}: {line}\n")

    def _live_users(self) -> list[str]:
        live = []
        for path in self._users.glob("pid-*"):
            pid, _, ticks = path.name.removeprefix("pid-").partition("-")
            if ProcessRef(int(pid), int(ticks)).alive():
                live.append(path.name)
            else:
                path.unlink(missing_ok=True)  # a session killed before its teardown
        return live

    @staticmethod
    def _name(ref: ProcessRef | None) -> str:
        return f"pid-{ref.pid}-{ref.ticks}" if ref is not None else f"pid-{os.getpid()}-0"


def require_reachable(api_url: str) -> None:
    """Any HTTP answer will do (a 503 is a finding); no answer at all ends the session."""
    if ApiClient(api_url).status("/health", timeout=5) is None:
        raise TargetUnreachable(
            f"the API at {api_url} does not answer: check the URL in the target file and "
            "that the service is reachable from here"
        )


def _say(config: pytest.Config) -> Say:
    """One line on the terminal, past pytest's capture (workers' lines are not shown)."""
    capman = config.pluginmanager.get_plugin("capturemanager")
    reporter = config.pluginmanager.get_plugin("terminalreporter")

    def say(line: str) -> None:
        if reporter is None:
            return
        with capman.global_and_fixture_disabled() if capman else contextlib.nullcontext():
            reporter.write_line(f"opsdrill: {line}")

    return say


def configured_target(config: pytest.Config) -> Target:
    """The `--target` of this session, built once (nothing started or touched yet)."""
    if _TARGET not in config.stash:
        built = parse_spec(config.getoption("--target"))
        built.allow_destructive = config.getoption("--allow-destructive")
        config.stash[_TARGET] = built
    return config.stash[_TARGET]


@pytest.fixture(scope="session")
def target(request: pytest.FixtureRequest) -> Iterator[Target]:
    """The stack under test (see `opsdrill.targets.base.Target`), as it is."""
    config = request.config
    spec = config.getoption("--target")
    try:
        tgt = configured_target(config)
        session = SessionTarget(tgt, may_create_dir=spec == DEFAULT_SPEC, say=_say(config))
        session.open()
    except OpsdrillError as exc:
        pytest.exit(
            f"opsdrill: target {spec!r} is not usable: {exc}", returncode=exit_code_for(exc)
        )
    try:
        yield session.target
    finally:
        session.close()


@pytest.fixture(autouse=True)
def _exclusive_drill(request: pytest.FixtureRequest) -> Iterator[None]:
    """A destructive test holds the target's state lock exclusively while it runs."""
    if not request.node.get_closest_marker("destructive") or "target" not in request.fixturenames:
        yield
        return
    tgt: Target = request.getfixturevalue("target")
    wait = request.config.getoption("--lock-wait")
    lock = state_lock(tgt, exclusive=True, timeout=wait, on_wait=_say(request.config))
    try:
        lock.__enter__()
    except TargetBusy as exc:
        pytest.exit(f"opsdrill: refusing to start a drill: {exc}", returncode=ExitCode.USAGE)
    try:
        yield
    finally:
        lock.__exit__(None, None, None)
