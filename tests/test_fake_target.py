"""The fake backend behaves as the Target contract says, so runner-logic tests can trust it:
services that start, stop and die, the destructive refusals, capabilities that follow what it
has, and a fault journaled on it that another process's rollback undoes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from opsdrill.errors import CapabilityMissing, DestructiveRefused
from opsdrill.faults import DbDown
from opsdrill.faults.rollback import rollback
from opsdrill.targets.fake import FakeTarget


def test_services_start_stop_and_die_and_say_so() -> None:
    target = FakeTarget()
    target.allow_destructive = True
    db = target.service("db")
    pid = db.pid()
    db.kill()
    assert not db.is_running() and db.pid() is None
    db.start()
    assert db.healthy() and db.pid() not in (None, pid)
    db.stop()
    db.stop()  # a no-op when stopped: not recorded twice
    assert target.actions == ["kill -SIGKILL db", "start db", "stop db"]


def test_changes_need_the_right_and_production_refuses_always() -> None:
    target = FakeTarget()
    with pytest.raises(DestructiveRefused, match="pass --allow-destructive"):
        target.service("api").kill()
    prod = FakeTarget(production=True)
    prod.allow_destructive = True
    with pytest.raises(DestructiveRefused, match="production target 'fake'"):
        prod.service("api").stop()
    assert target.actions == [] and prod.actions == []
    assert target.service("api").is_running() and prod.service("api").is_running()


def test_capabilities_follow_what_it_has(tmp_path: Path) -> None:
    assert FakeTarget().capabilities == {"service_control"}
    assert FakeTarget(journal=tmp_path).capabilities == {"service_control", "fault_journal"}
    with pytest.raises(CapabilityMissing, match="keeps no fault journal"):
        _ = FakeTarget().journal_dir
    with pytest.raises(CapabilityMissing):
        FakeTarget().set_memory_limit("api", 1)


def test_a_fault_left_by_a_dead_runner_is_undone_by_rollback(tmp_path: Path) -> None:
    """Injected by a runner that then died without reverting: the journal keeps it, and
    rollback in this process (another target object on the same journal) starts the database
    again and forgets the entry."""
    code = (
        "import sys; from pathlib import Path; from opsdrill.faults import DbDown; "
        "from opsdrill.targets.fake import FakeTarget; "
        "t = FakeTarget(journal=Path(sys.argv[1])); t.allow_destructive = True; "
        "DbDown(t, sig='SIGKILL').inject(); assert t.actions == ['kill -SIGKILL db']"
    )
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True, timeout=60)
    assert len(list(tmp_path.glob("faults/*.json"))) == 1, "not journaled before it acted"

    later = FakeTarget(journal=tmp_path)
    later.service("db").running = False  # what the dead runner's fault left
    said: list[str] = []
    reverted = rollback(later, say=said.append)
    assert reverted == ["db_down(sig=SIGKILL, stop=False)"], said
    assert later.service("db").is_running() and later.actions == ["start db"]
    assert not list(tmp_path.glob("faults/*.json")), "the journal entry outlived its revert"
    assert later.allow_destructive is False  # rollback's right is its own, and given back


def test_a_fault_whose_runner_lives_is_left_to_it(tmp_path: Path) -> None:
    target = FakeTarget(journal=tmp_path)
    target.allow_destructive = True
    fault = DbDown(target, sig="SIGKILL")
    fault.inject()
    said: list[str] = []
    assert rollback(FakeTarget(journal=tmp_path), say=said.append) == []
    assert said and said[0].startswith("left alone: db_down") and str(os.getpid()) in said[0]
    fault.revert()
    assert target.service("db").is_running() and not list(tmp_path.glob("faults/*.json"))
