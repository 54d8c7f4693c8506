"""The workers' memory cgroup on v1 (for real, on this machine) and v2 (its file protocol).

This machine is hybrid: cgroup v1 holds the memory controller, and a cgroup2 hierarchy can be
mounted but only ever offers `hugetlb` (a controller belongs to one hierarchy at a time), so a
real OOM kill through `memory.max` cannot happen here. The v2 variant is therefore tested
against a directory laid out like cgroupfs: which files it reads and writes, and what it does
with what it finds. The real v2 OOM kill has NOT been exercised on this machine.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from opsdrill.faults.base import Fault
from opsdrill.faults.host_oom import HostOom
from opsdrill.faults.journal import Journal
from opsdrill.targets.local import LocalTarget
from opsdrill.targets.local import worker_cgroup as wc
from opsdrill.targets.local.worker_cgroup import CgroupV1, CgroupV2, WorkerCgroup

MB = 1024 * 1024

HOG = """
import os, sys
open(sys.argv[1], "w").write(str(os.getpid()))
hog = []
while True:
    hog.append(bytearray(16 * 1024 * 1024))  # touched pages: really resident
"""


# -- cgroup v2: the file protocol, on a tree laid out like cgroupfs ---------------------------


def _v2_tree(root: Path, *, controllers: str = "cpu io memory pids") -> Path:
    """A v2 hierarchy root with this process's cgroup `/svc` under it; returns /svc."""
    for d in (root, root / "svc"):
        d.mkdir(parents=True, exist_ok=True)
        (d / "cgroup.controllers").write_text(controllers + "\n")
        (d / "cgroup.subtree_control").write_text("\n")
        (d / "cgroup.procs").write_text("")
    return root / "svc"


def _v2_group(parent: Path, name: str = "opsdrill-x") -> Path:
    group = parent / name
    group.mkdir()
    files = {
        "cgroup.controllers": "memory\n",
        "cgroup.procs": "",
        "memory.max": "max\n",
        "memory.swap.max": "max\n",
        "memory.current": "5242880\n",
        "memory.peak": "9437184\n",
        "memory.events": "low 0\nhigh 0\nmax 4\noom 2\noom_kill 2\noom_group_kill 0\n",
    }
    for name, text in files.items():
        (group / name).write_text(text)
    return group


def test_v2_variant_is_chosen_where_cgroup_controllers_exist(tmp_path: Path) -> None:
    group = _v2_group(_v2_tree(tmp_path / "v2"))
    assert isinstance(WorkerCgroup.at(group), CgroupV2)
    assert isinstance(WorkerCgroup.at(group.parent / "not-yet-created"), CgroupV2)
    v1 = tmp_path / "v1" / "memory"
    v1.mkdir(parents=True)
    (v1 / "memory.limit_in_bytes").write_text("9223372036854771712\n")
    assert isinstance(WorkerCgroup.at(v1), CgroupV1)


def test_v2_limits_lower_restore_and_oom_count(tmp_path: Path) -> None:
    cgroup = WorkerCgroup.at(_v2_group(_v2_tree(tmp_path)))
    before = cgroup.limits()
    assert before == {"max": "max", "swap_max": "max"}
    assert cgroup.limit_bytes() is None
    cgroup.lower_to(100 * MB)
    assert (cgroup.path / "memory.max").read_text() == str(100 * MB)
    assert (cgroup.path / "memory.swap.max").read_text() == "0"  # no swapping out of the OOM
    assert cgroup.limit_bytes() == 100 * MB
    cgroup.restore(before)
    assert (cgroup.path / "memory.max").read_text() == "max"
    assert (cgroup.path / "memory.swap.max").read_text() == "max"
    assert cgroup.oom_kills() == 2  # oom_kill, not oom (the events before a kill) nor max
    assert cgroup.peak_bytes() == 9 * MB
    (cgroup.path / "memory.peak").unlink()  # kernels before 5.19
    assert cgroup.peak_bytes() == 5 * MB


def test_v2_placed_under_own_cgroup_with_memory_delegated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    own = _v2_tree(tmp_path / "unified")
    monkeypatch.setattr(wc, "V1_ROOT", tmp_path / "no-v1-here")
    monkeypatch.setattr(wc, "V2_ROOTS", (tmp_path / "missing", tmp_path / "unified"))
    found = WorkerCgroup.for_state_dir(Path("/var/tmp/s"), proc_cgroup="0::/svc\n")
    assert isinstance(found, CgroupV2)
    assert found.path.parent == own and found.path.name.startswith("opsdrill-")
    assert (own / "cgroup.subtree_control").read_text() == "+memory"


def test_v2_without_the_memory_controller_gives_no_cgroup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """This machine's own case: the cgroup2 hierarchy offers only hugetlb."""
    _v2_tree(tmp_path / "unified", controllers="hugetlb")
    monkeypatch.setattr(wc, "V1_ROOT", tmp_path / "no-v1-here")
    monkeypatch.setattr(wc, "V2_ROOTS", (tmp_path / "unified",))
    assert WorkerCgroup.for_state_dir(Path("/var/tmp/s"), proc_cgroup="0::/svc\n") is None


def test_host_oom_fault_on_v2_lowers_and_rollback_restores(tmp_path: Path) -> None:
    group = _v2_group(_v2_tree(tmp_path / "cg"))
    target = LocalTarget(tmp_path / "state", worker_cgroup=False)
    target.options.worker_cgroup = str(group)
    target.options.save(target.state_dir)  # as `up` does: every later LocalTarget sees it
    fault = HostOom(target, limit_mb=100)
    fault.inject()  # never reverted by this process: as if its runner had been SIGKILLed
    assert (group / "memory.max").read_text() == str(100 * MB)
    assert (group / "memory.swap.max").read_text() == "0", "lowered, so no swapping either"
    assert target.oom_kills("worker") == 2
    assert target.memory("worker").limit_bytes == 100 * MB
    (entry,) = Journal(target.journal_dir).entries()
    assert entry.undo["previous_limit"] is None and entry.undo["oom_kills_before"] == 2
    Fault.from_entry(LocalTarget(tmp_path / "state"), entry).revert()
    assert (group / "memory.max").read_text() == "max"
    assert (group / "memory.swap.max").read_text() == "max"
    assert Journal(target.journal_dir).entries() == []


# -- cgroup v1: for real ------------------------------------------------------------------------

needs_v1 = pytest.mark.skipif(
    os.geteuid() != 0 or not (wc.V1_ROOT / "memory.limit_in_bytes").exists(),
    reason="needs root and the cgroup v1 memory controller",
)


@needs_v1
def test_v1_real_oom_kill_is_counted_and_limit_restored(tmp_path: Path) -> None:
    cgroup = WorkerCgroup.for_state_dir(tmp_path)
    assert isinstance(cgroup, CgroupV1)
    cgroup.create()
    try:
        before = cgroup.limits()
        kills = cgroup.oom_kills()
        cgroup.lower_to(64 * MB)
        assert cgroup.limit_bytes() == 64 * MB
        hog = subprocess.run(
            [sys.executable, "-c", HOG, str(cgroup.procs_file)], timeout=60, check=False
        )
        assert hog.returncode == -signal.SIGKILL, f"the hog ended with {hog.returncode}"
        assert cgroup.oom_kills() == kills + 1
        assert cgroup.peak_bytes() >= 60 * MB
        cgroup.restore(before)
        assert cgroup.limit_bytes() is None
    finally:
        cgroup.remove()
    assert not cgroup.path.exists()
