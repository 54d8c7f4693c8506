"""Run one drill: steady state → inject → effect → detection → recovery → steady state.

Like chaostoolkit's run journal, each step is recorded as it happens; unlike its default
strategy, the revert is never skipped: it runs in `finally`, on failure, on Ctrl-C and on
SIGTERM (the CLI turns SIGTERM into KeyboardInterrupt), and the fault journal covers SIGKILL.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from opsdrill import events
from opsdrill.drill.availability import AvailabilityProbe
from opsdrill.drill.integrity import IntegritySnapshot, take_snapshot
from opsdrill.drill.timeline import Timeline
from opsdrill.errors import FaultNotEffective
from opsdrill.faults.base import Fault

__all__ = ["Detector", "DrillResult", "DrillSpec", "run_drill"]

STEP = 0.05  # polling step: well under the 250 ms timeline resolution


@dataclass
class Detector:
    """A yes/no question about the stack, asked repeatedly until yes or the deadline."""

    name: str
    check: Callable[[], bool]
    timeout: float = 30.0
    #: why this target cannot answer it (e.g. no Prometheus): recorded as skipped, never asked
    skipped: str = ""

    def ask(self) -> bool:
        try:
            return bool(self.check())
        except Exception:  # a probe that cannot answer has not seen the condition
            return False


@dataclass
class DrillSpec:
    name: str
    title: str
    runbook: str
    severity: str  # P0..P3, runbook §9
    fault: Fault
    effect: Detector  # proof the fault took effect; none within its timeout fails the drill
    detectors: list[Detector]  # how the stack notices: health, metrics, alerts
    steady: list[Detector]  # true before the fault and again after recovery
    availability_url: str
    dsn: str | None = None  # for the integrity snapshot
    #: the runbook's recovery procedure as code; returns the actions it took. The fault's own
    #: revert always runs after it, so a procedure that only repairs part still leaves no fault.
    recover: Callable[[], list[str]] | None = None
    hold: float = 0.0  # keep the fault after detection, e.g. to let reconnect back-off grow
    resolved: list[Detector] = field(default_factory=list)  # e.g. the alert resolves
    recovery_timeout: float = 60.0


@dataclass
class DrillResult:
    spec: DrillSpec
    incident_id: str
    timeline: Timeline
    passed: bool = False
    errors: list[str] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)
    failed_probes: int = 0
    total_probes: int = 0
    downtime: float = 0.0
    integrity_problems: list[str] = field(default_factory=list)
    record_path: Path | None = None
    #: (t, ok, status, latency seconds) of every availability probe, for plots
    samples: list[tuple[float, bool, int, float]] = field(default_factory=list)

    @property
    def mttd(self) -> float | None:
        return self.timeline.between("injecting", "detected")

    @property
    def mttr(self) -> float | None:
        return self.timeline.between("injecting", "recovered")

    @property
    def skipped_detectors(self) -> list[str]:
        """'<detector>: skipped: <reason>' for each detector this target could not ask."""
        return [e.detail for e in self.timeline.events if e.name.endswith("_skipped")]

    @property
    def summary(self) -> str:
        if self.passed:
            return (
                f"It was detected after {self.mttd:.2f} s and the stack was back to its steady "
                f"state {self.mttr:.2f} s after injection, with nothing lost."
            )
        return "The drill failed: " + "; ".join(self.errors)

    def to_dict(self) -> dict[str, Any]:
        return {
            "incident_id": self.incident_id,
            "drill": self.spec.name,
            "title": self.spec.title,
            "runbook": self.spec.runbook,
            "severity": self.spec.severity,
            "fault": self.spec.fault.describe(),
            "passed": self.passed,
            "mttd_seconds": self.mttd,
            "mttr_seconds": self.mttr,
            "failed_probes": self.failed_probes,
            "total_probes": self.total_probes,
            "downtime_seconds": self.downtime,
            "integrity_problems": self.integrity_problems,
            "errors": self.errors,
            "skipped_detectors": self.skipped_detectors,
            "actions": self.actions,
            "timeline": self.timeline.to_list(),
            "samples": [list(s) for s in self.samples],
        }


def _poll_all(detectors: list[Detector], tl: Timeline, event: str) -> list[str]:
    """Ask every detector until each said yes (marking `event` then) or timed out."""
    t0 = time.monotonic()
    for det in detectors:
        if det.skipped:  # shown on the timeline and counted, neither passed nor failed
            tl.mark(f"{event}_skipped", f"{det.name}: skipped: {det.skipped}")
    pending = [d for d in detectors if not d.skipped]
    while pending:
        for det in list(pending):
            if det.ask():  # stamped when the answer came back: what a pager would see
                tl.mark(event, det.name)
                pending.remove(det)
            elif time.monotonic() - t0 > det.timeout:
                tl.mark(f"{event}_timeout", det.name)
                pending.remove(det)
        if pending:
            time.sleep(STEP)
    return [d.name for d in detectors if not d.skipped and not any(
        e.name == event and e.detail == d.name for e in tl.events
    )]  # fmt: skip


def run_drill(spec: DrillSpec, reports_dir: Path | None = None) -> DrillResult:
    """Run the drill; the fault is reverted whatever happens. Never raises for a failed drill."""
    from opsdrill.drill.record import write_incident_record

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    result = DrillResult(spec, f"INC-{stamp}-{spec.name}", Timeline())
    tl = result.timeline
    if missed := [d.name for d in spec.steady if not d.ask()]:
        result.errors.append(f"steady state not met before the fault: {', '.join(missed)}")
        return _finish(result, reports_dir, write_incident_record)
    tl.mark("steady_state_ok", ", ".join(d.name for d in spec.steady))
    before: IntegritySnapshot | None = take_snapshot(spec.dsn) if spec.dsn else None
    with AvailabilityProbe(spec.availability_url, tl.now) as probe:
        try:
            # the outage may begin during inject() (a stop, a restart): measure from its start
            tl.mark("injecting", spec.fault.describe())
            spec.fault.inject()
            tl.mark("injected", spec.fault.describe())
            if _poll_all([spec.effect], tl, "effect_seen"):
                raise FaultNotEffective(
                    f"{spec.fault.describe()} was injected but {spec.effect.name!r} was not "
                    f"seen within {spec.effect.timeout:.0f} s"
                )
            if missed := _poll_all(spec.detectors, tl, "detected"):
                result.errors.append(f"not detected: {', '.join(missed)}")
            elif spec.detectors and all(d.skipped for d in spec.detectors):
                result.errors.append("not detected: every detector was skipped on this target")
            if spec.hold:
                time.sleep(spec.hold)  # the fault's duration is part of the scenario
        except FaultNotEffective as exc:
            result.errors.append(str(exc))
        finally:
            _recover(spec, result)
        recovery = [Detector(d.name, d.check, spec.recovery_timeout) for d in spec.steady]
        if missed := _poll_all(recovery, tl, "steady_again"):
            result.errors.append(f"did not recover: {', '.join(missed)} still failing")
        else:
            tl.mark("recovered", "steady state restored")
        if missed := _poll_all(spec.resolved, tl, "resolved"):
            result.errors.append(f"not resolved: {', '.join(missed)}")
    result.failed_probes, result.total_probes = probe.failed, probe.total
    result.downtime = probe.downtime()
    result.samples = [(s.t, s.ok, s.status, round(s.latency, 4)) for s in probe.samples]
    if before is not None and tl.first("recovered"):
        after = take_snapshot(spec.dsn, before.bounds)  # type: ignore[arg-type]
        result.integrity_problems = before.compare(after)
        result.errors += [f"data lost: {p}" for p in result.integrity_problems]
    result.passed = not result.errors
    return _finish(result, reports_dir, write_incident_record)


def _recover(spec: DrillSpec, result: DrillResult) -> None:
    tl = result.timeline
    try:
        if spec.recover is not None:
            result.actions += spec.recover()
    except Exception as exc:
        result.errors.append(f"recovery procedure failed: {exc}")
    finally:
        spec.fault.revert()
        result.actions.append(f"fault reverted: {spec.fault.undo_summary or spec.fault.describe()}")
        tl.mark("reverted", spec.fault.describe())


def _finish(result: DrillResult, reports_dir: Path | None, write: Callable) -> DrillResult:  # type: ignore[type-arg]
    if reports_dir is not None:
        result.record_path = write(result, reports_dir)
    events.emit("drill_finished", result=result)
    return result
