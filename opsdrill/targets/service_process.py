"""Helper processes a fault starts where a service runs (`Target.exec(detach=True)`): CPU
hogs, port holders, the GPU memory holder.

Stopped by pid only, as `opsdrill.processes` does on this machine: the start time read from
the service's own /proc when the helper started is checked again before it is signalled, so a
recycled pid is never killed; and the signal is `kill -KILL PID` where the service runs, never a
name matched. Wherever the service runs (this machine, a container, a host), pids are the
ones it sees.
"""

from __future__ import annotations

import signal
from collections.abc import Sequence
from dataclasses import dataclass, field

from opsdrill.errors import FaultNotEffective
from opsdrill.polling import poll
from opsdrill.processes import stat_start_ticks
from opsdrill.targets.base import Target

__all__ = ["ServiceProcess"]


def _stat(target: Target, service: str, pid: int) -> str | None:
    done = target.exec(service, ["cat", f"/proc/{pid}/stat"], timeout=10)
    return done.stdout if done.ok else None


def _ticks(target: Target, service: str, pid: int) -> int | None:
    """`pid`'s start time where `service` runs; None once it is gone (or a zombie)."""
    stat = _stat(target, service, pid)
    return stat_start_ticks(stat) if stat is not None else None


@dataclass(frozen=True)
class ServiceProcess:
    """One helper process: the service it runs beside, its pid there and its start time."""

    target: Target = field(repr=False, compare=False)
    service: str
    pid: int
    ticks: int

    @classmethod
    def start(cls, target: Target, service: str, argv: Sequence[str]) -> ServiceProcess:
        """Start `argv` in the background where `service` runs; one sentence if it cannot."""
        done = target.exec(service, argv, detach=True)
        if not done.ok or not done.stdout.strip().isdigit():
            raise FaultNotEffective(
                f"could not start {argv[0]} where {service} runs: {done.output()}"
            )
        pid = int(done.stdout.strip())
        ticks = _ticks(target, service, pid)
        return cls(target, service, pid, -1 if ticks is None else ticks)

    @classmethod
    def at(cls, target: Target, service: str, pid: int) -> ServiceProcess | None:
        """The process now at `pid` where `service` runs (its start time read there), or None
        when there is none."""
        ticks = _ticks(target, service, pid)
        return None if ticks is None else cls(target, service, pid, ticks)

    @classmethod
    def of(cls, target: Target, record: Sequence[object]) -> ServiceProcess:
        """From its journal record ([service, pid, ticks]; [pid, ticks] means "api")."""
        service, pid, ticks = record if len(record) == 3 else ("api", *record)
        return cls(target, str(service), int(pid), int(ticks))  # type: ignore[call-overload]

    def record(self) -> list[object]:
        """What the journal keeps to find it again: [service, pid, ticks]."""
        return [self.service, self.pid, self.ticks]

    def alive(self) -> bool:
        """True while the pid still names the process started (same start time)."""
        return self.ticks >= 0 and _ticks(self.target, self.service, self.pid) == self.ticks

    def cpu_ticks(self) -> int | None:
        """CPU time it has used (utime+stime, clock ticks); None once it is gone."""
        stat = _stat(self.target, self.service, self.pid)
        if stat is None or stat_start_ticks(stat) != self.ticks:
            return None
        fields = stat[stat.rindex(")") + 2 :].split()
        return int(fields[11]) + int(fields[12])

    def kill(self) -> bool:
        """SIGKILL it by pid if it is still the same process; False when already gone."""
        return self.signal(signal.SIGKILL)

    def signal(self, sig: int) -> bool:
        """Send `sig` by pid if it is still the same process; False when already gone."""
        if not self.alive():
            return False
        name = signal.Signals(sig).name.removeprefix("SIG")
        done = self.target.exec(self.service, ["sh", "-c", f'kill -{name} "$0"', str(self.pid)])
        return done.ok

    def wait_gone(self, timeout: float) -> bool:
        """Poll until it has exited; True if it did within `timeout` seconds."""
        return poll(lambda: (not self.alive()) or None, timeout, interval=0.1) is not None
