"""The memory cgroup the embedded stack's training workers join, on cgroup v1 or v2.

Unlimited while the stack is healthy; the host-OOM fault lowers its limit, so the kernel
OOM-kills a worker for real while the API, outside the group, keeps serving. The app is given
`cgroup.procs` (NF_WORKER_CGROUP_PROCS) and each worker writes its own pid there.

The two hierarchies speak different files, so the variant is picked once, when the object is
built (as testinfra picks `SystemdService` or `OpenRCService`), never by `if` in each method:

    v1  memory.limit_in_bytes (+ memory.memsw.limit_in_bytes), OOM kills in memory.oom_control
    v2  memory.max (+ memory.swap.max), OOM kills in memory.events; the parent must list
        `memory` in cgroup.subtree_control (cgroup v2's rule: no controller without it)

The group is created under the cgroup of the process running `up`, so it never escapes that
one's own limit.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar

from opsdrill.errors import ServiceError
from opsdrill.polling import poll

__all__ = ["CgroupV1", "CgroupV2", "WorkerCgroup"]

V1_ROOT = Path("/sys/fs/cgroup/memory")
#: where a cgroup2 hierarchy is mounted: alone (v2-only hosts) or beside v1 (hybrid hosts)
V2_ROOTS = (Path("/sys/fs/cgroup"), Path("/sys/fs/cgroup/unified"))


def _own_cgroup(proc_cgroup: str, v1: bool) -> str:
    """This process's cgroup path in the v1 memory hierarchy, or in the v2 one ("0::")."""
    for line in proc_cgroup.splitlines():
        number, controllers, rel = line.split(":", 2)
        if v1 and "memory" in controllers.split(","):
            return rel
        if not v1 and number == "0" and controllers == "":
            return rel
    return "/"


def _group_name(state_dir: Path) -> str:
    return "opsdrill-" + hashlib.sha1(str(state_dir).encode()).hexdigest()[:10]


class WorkerCgroup(ABC):
    """One memory cgroup directory; `at()` and `for_state_dir()` pick the v1 or v2 variant."""

    version: ClassVar[int]

    def __init__(self, path: Path) -> None:
        self.path = path

    # -- choosing the variant ------------------------------------------------------------
    @staticmethod
    def at(path: Path) -> WorkerCgroup:
        """The variant for an existing (or about to be created) group directory: a v2 group
        and its parent hold cgroup.controllers, which v1 has nowhere."""
        probe = path if path.is_dir() else path.parent
        return CgroupV2(path) if (probe / "cgroup.controllers").exists() else CgroupV1(path)

    @classmethod
    def for_state_dir(cls, state_dir: Path, proc_cgroup: str | None = None) -> WorkerCgroup | None:
        """Where this stack's group goes, or None without root or a usable memory controller.

        v1's memory controller wins where it is mounted (on a hybrid host the v2 hierarchy
        cannot have it); else the v2 hierarchy, when `memory` is or can be delegated below
        this process's own cgroup.
        """
        if os.geteuid() != 0:
            return None
        own = proc_cgroup if proc_cgroup is not None else Path("/proc/self/cgroup").read_text()
        return CgroupV1.place(state_dir, own) or CgroupV2.place(state_dir, own)

    # -- the common protocol --------------------------------------------------------------
    @property
    def procs_file(self) -> Path:
        return self.path / "cgroup.procs"

    def create(self) -> None:
        self.path.mkdir(exist_ok=True)

    def pids(self) -> list[int]:
        try:
            return [int(p) for p in self.procs_file.read_text().split()]
        except FileNotFoundError:
            return []

    def remove(self) -> None:
        """Move any task to the parent group, then remove the directory."""
        if not self.path.exists():
            return
        for pid in self.pids():
            with contextlib.suppress(OSError):  # a task that exits meanwhile
                (self.path.parent / "cgroup.procs").write_text(str(pid))

        def removed() -> bool | None:
            try:
                self.path.rmdir()
                return True
            except OSError:  # EBUSY while the last task is still leaving
                return None

        if poll(removed, 5.0, interval=0.1) is None:
            raise ServiceError(f"cannot remove cgroup {self.path}: tasks {self.pids()} remain")

    def _read(self, name: str) -> str:
        return (self.path / name).read_text().strip()

    def _write(self, name: str, value: str) -> None:
        (self.path / name).write_text(value)

    @abstractmethod
    def limits(self) -> dict[str, str | None]:
        """The current limits, as `restore()` takes them back (journaled before lowering)."""

    @abstractmethod
    def lower_to(self, limit: int) -> None:
        """Limit the group's memory (and swap, where accounted) to `limit` bytes."""

    @abstractmethod
    def restore(self, limits: dict[str, str | None]) -> None:
        """Write back what `limits()` returned."""

    @abstractmethod
    def limit_bytes(self) -> int | None:
        """The memory limit now; None when unlimited."""

    @abstractmethod
    def peak_bytes(self) -> int:
        """The most memory the group has used (its current use where no peak is kept)."""

    @abstractmethod
    def oom_kills(self) -> int:
        """How many tasks the kernel's OOM killer has killed in this group."""


class CgroupV1(WorkerCgroup):
    """cgroup v1 memory controller: limit_in_bytes, memsw where swap is accounted."""

    version = 1
    UNLIMITED = 2**62  # the kernel reports "no limit" as a page-rounded LONG_MAX

    @classmethod
    def place(cls, state_dir: Path, proc_cgroup: str) -> CgroupV1 | None:
        if not (V1_ROOT / "memory.limit_in_bytes").exists():
            return None
        parent = V1_ROOT / _own_cgroup(proc_cgroup, v1=True).lstrip("/")
        if not os.access(parent, os.W_OK):
            return None
        return cls(parent / _group_name(state_dir))

    def _memsw(self) -> bool:
        return (self.path / "memory.memsw.limit_in_bytes").exists()

    def limits(self) -> dict[str, str | None]:
        memsw = self._read("memory.memsw.limit_in_bytes") if self._memsw() else None
        return {"limit": self._read("memory.limit_in_bytes"), "memsw": memsw}

    def lower_to(self, limit: int) -> None:
        self._write("memory.limit_in_bytes", str(limit))  # lowering: memory first
        if self._memsw():
            self._write("memory.memsw.limit_in_bytes", str(limit))

    def restore(self, limits: dict[str, str | None]) -> None:
        if (memsw := limits.get("memsw")) is not None:
            self._write("memory.memsw.limit_in_bytes", memsw)  # raising: memsw first
        if (limit := limits.get("limit")) is not None:
            self._write("memory.limit_in_bytes", limit)

    def limit_bytes(self) -> int | None:
        limit = int(self._read("memory.limit_in_bytes"))
        return None if limit >= self.UNLIMITED else limit

    def peak_bytes(self) -> int:
        return int(self._read("memory.max_usage_in_bytes"))

    def oom_kills(self) -> int:
        """`oom_kill` in memory.oom_control (kernels before 4.13 lack it: 0)."""
        for line in self._read("memory.oom_control").splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
        return 0


class CgroupV2(WorkerCgroup):
    """cgroup v2 unified hierarchy: memory.max and memory.swap.max, counted in memory.events."""

    version = 2

    @classmethod
    def place(cls, state_dir: Path, proc_cgroup: str) -> CgroupV2 | None:
        """Under this process's own v2 cgroup, once `memory` is delegated to its children."""
        rel = _own_cgroup(proc_cgroup, v1=False).lstrip("/")
        for root in V2_ROOTS:
            parent = root / rel
            if (parent / "cgroup.subtree_control").exists() and cls.delegate_memory(parent):
                return cls(parent / _group_name(state_dir))
        return None

    @staticmethod
    def delegate_memory(parent: Path) -> bool:
        """Enable `memory` for `parent`'s children; False where the hierarchy lacks it, or
        where v2 refuses (a non-root group that holds processes itself cannot delegate)."""
        if "memory" not in (parent / "cgroup.controllers").read_text().split():
            return False
        if "memory" in (parent / "cgroup.subtree_control").read_text().split():
            return True
        try:
            (parent / "cgroup.subtree_control").write_text("+memory")
        except OSError:
            return False
        return True

    def _swap(self) -> bool:
        return (self.path / "memory.swap.max").exists()

    def limits(self) -> dict[str, str | None]:
        swap = self._read("memory.swap.max") if self._swap() else None
        return {"max": self._read("memory.max"), "swap_max": swap}

    def lower_to(self, limit: int) -> None:
        if self._swap():
            self._write("memory.swap.max", "0")  # no swapping out of the OOM: kill, as v1 does
        self._write("memory.max", str(limit))

    def restore(self, limits: dict[str, str | None]) -> None:
        if (limit := limits.get("max")) is not None:
            self._write("memory.max", limit)
        if (swap := limits.get("swap_max")) is not None:
            self._write("memory.swap.max", swap)

    def limit_bytes(self) -> int | None:
        limit = self._read("memory.max")
        return None if limit == "max" else int(limit)

    def peak_bytes(self) -> int:
        """memory.peak (kernel 5.19+), else memory.current."""
        name = "memory.peak" if (self.path / "memory.peak").exists() else "memory.current"
        return int(self._read(name))

    def oom_kills(self) -> int:
        """`oom_kill` in memory.events: tasks of this group (and below) the OOM killer took."""
        for line in self._read("memory.events").splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
        return 0
