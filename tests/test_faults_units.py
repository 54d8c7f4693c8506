"""Fault pieces that need no stack: self-ending hogs, parameter checks, --plan, --chaos-seed."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from opsdrill.faults import CpuHog, LockContention
from opsdrill.faults.journal import Journal
from opsdrill.targets.local import LocalTarget


def test_cpu_hogs_end_by_themselves_even_if_never_reverted(tmp_path: Path) -> None:
    fault = CpuHog(LocalTarget(tmp_path), count=2, max_seconds=0.5)
    fault.inject()
    refs = fault.refs()
    assert len(refs) == 2 and [e.undo["hogs"] for e in Journal(tmp_path).entries()]
    deadline = time.monotonic() + 30
    while any(r.alive() for r in refs) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(r.alive() for r in refs), "a hog outlived its max_seconds"
    fault.revert()  # nothing left to stop: still clean
    assert Journal(tmp_path).entries() == []


def test_cpu_hog_revert_stops_every_hog_by_pid(tmp_path: Path) -> None:
    with CpuHog(LocalTarget(tmp_path), count=2, max_seconds=60) as fault:
        refs = fault.refs()
        assert all(r.alive() for r in refs)
    assert not any(r.alive() for r in refs)


@pytest.mark.parametrize(
    ("params", "message"),
    [({"mode": "SHARE"}, "lock mode 'SHARE'"), ({"table": "runs; DROP"}, "plain identifier")],
)
def test_lock_contention_refuses_bad_parameters(
    tmp_path: Path, params: dict[str, str], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        LockContention(LocalTarget(tmp_path), **params)


PLANNED = """
import pytest

pytestmark = [pytest.mark.destructive, pytest.mark.runbook("5.2.5")]

@pytest.mark.fault("cpu_hog", count=3)
def test_hog(target):
    raise AssertionError("--plan must not run anything")

def test_undeclared(target):
    raise AssertionError("--plan must not run anything")
"""


def test_plan_lists_fault_target_blast_radius_and_undo_and_runs_nothing(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(PLANNED)
    result = pytester.runpytest("--plan", "--target", "local:/nonexistent/state")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(
        [
            "opsdrill plan: 2 drill(s); nothing was run or touched",
            "*::test_hog",
            "*runbook*5.2.5",
            "*fault*cpu_hog(count=3)",
            "*target*local:/nonexistent/state",
            "*blast radius*every process where the app runs*",
            "*undo*stop each hog by its journaled pid*",
            "*::test_undeclared",
            "*fault*(not declared*",
        ]
    )
    assert "AssertionError" not in result.stdout.str()
    assert not Path("/nonexistent/state").exists()


SEEDED = """
def test_choice(chaos_rng, chaos_seed):
    print(f"seed={chaos_seed} pick={chaos_rng.randint(0, 10**9)}")
"""


def test_chaos_seed_is_printed_and_replays_the_same_choices(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(SEEDED)
    first = pytester.runpytest("-s")
    header = next(line for line in first.outlines if "opsdrill chaos seed:" in line)
    seed = int(header.split("seed:")[1].split()[0])
    pick = next(line for line in first.outlines if "pick=" in line).split("pick=")[1]
    again = pytester.runpytest("-s", "--chaos-seed", str(seed))
    again.stdout.fnmatch_lines([f"opsdrill chaos seed: {seed} (replay with --chaos-seed {seed})"])
    assert f"seed={seed} pick={pick}" in again.stdout.str()


SIGTERMED = """
import time
from pathlib import Path
from opsdrill.faults import CpuHog
from opsdrill.targets.local import LocalTarget

def test_hold():
    state = Path({state!r})
    with CpuHog(LocalTarget(state), count=1, max_seconds=120) as fault:
        print("injected", fault.refs()[0].pid, fault.refs()[0].ticks, flush=True)
        time.sleep(120)
"""


def test_sigterm_to_a_pytest_session_reverts_the_active_fault(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    import signal
    import subprocess
    import sys

    from opsdrill.processes import ProcessRef

    test_file = pytester.makepyfile(SIGTERMED.replace("{state!r}", repr(str(tmp_path))))
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", str(test_file), "-s", "-p", "no:cacheprovider"],
        stdout=subprocess.PIPE, text=True, cwd=pytester.path,
    )  # fmt: skip
    assert proc.stdout is not None
    line = next(line for line in proc.stdout if "injected" in line)  # after pytest's "file.py "
    pid, ticks = line.split("injected", 1)[1].split()
    hog = ProcessRef(int(pid), int(ticks))
    assert hog.alive()
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)
    assert not hog.alive(), "SIGTERM must unwind the session and revert the fault"
    assert Journal(tmp_path).entries() == []


def test_disk_full_refuses_a_filesystem_larger_than_a_data_filesystem(tmp_path: Path) -> None:
    """The machine's own disk is never filled: its size gives it away, before any write."""
    from opsdrill.errors import FaultNotEffective
    from opsdrill.faults import DiskFull

    target = LocalTarget(tmp_path / "state", worker_cgroup=False)
    (tmp_path / "state" / "home").mkdir(parents=True)
    with pytest.raises(FaultNotEffective, match="MiB, more than the 16 MiB"):
        DiskFull(target, max_mb=16).__enter__()
    assert not list((tmp_path / "state" / "home").rglob("opsdrill-ballast-*"))
    assert Journal(target.journal_dir).entries() == []
