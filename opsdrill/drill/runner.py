"""Run one drill, judging the runbook's recovery procedure on its own.

    steady state → inject → effect proven → detection → recovery procedure
      → steady state, with the fault's effect still in place          (MTTR ends here)
      → revert what is left (harness artefacts, toxics, held sessions) → steady state again

A drill whose steady state comes back only after the harness's revert has not been recovered
by its procedure and fails with RECOVERY_INCOMPLETE. A fault the stack should ride out with no
procedure says so on its class (`recovers_by_itself`, with the reason).

Like chaostoolkit's run journal, each step is recorded as it happens; unlike its default
strategy, the revert is never skipped: it runs in `finally`, on failure, on Ctrl-C and on
SIGTERM (the CLI turns SIGTERM into KeyboardInterrupt), and the fault journal covers SIGKILL.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from opsdrill import events
from opsdrill.drill.availability import AvailabilityProbe
from opsdrill.drill.detector import Detector, Polling, wait_all
from opsdrill.drill.integrity import IntegritySnapshot, take_snapshot
from opsdrill.drill.procedure import ProcedureFailed
from opsdrill.drill.record import write_incident_record
from opsdrill.drill.result import RECOVERY_INCOMPLETE, DrillResult
from opsdrill.drill.spec import DrillSpec
from opsdrill.drill.timeline import Timeline
from opsdrill.errors import FaultNotEffective

__all__ = ["RECOVERY_INCOMPLETE", "Detector", "DrillResult", "DrillSpec", "run_drill"]


def _spec_problem(spec: DrillSpec) -> str | None:
    fault = spec.fault
    if spec.recover is None and not fault.recovers_by_itself:
        return (
            f"drill {spec.name!r} names no recovery procedure and {fault.describe()} does not "
            "recover by itself: give the DrillSpec the runbook's procedure (opsdrill.recovery)"
        )
    if fault.recovers_by_itself and not fault.recovers_reason:
        return f"{type(fault).__name__} says it recovers by itself but gives no reason"
    return None


def _steady(spec: DrillSpec, tl: Timeline, event: str) -> list[str]:
    """Poll the steady state (concurrently, up to recovery_timeout); the detectors missed."""
    polled = [d.with_timeout(spec.recovery_timeout) for d in spec.steady]
    missed = []
    for det in wait_all(polled, tl.now):
        if det.t is None:
            missed.append(det.name)
            tl.mark(f"{event}_timeout", det.name)
        else:
            tl.mark(event, det.name, at=det.t)
    return missed


def run_drill(spec: DrillSpec, reports_dir: Path | None = None) -> DrillResult:
    """Run the drill; the fault is reverted whatever happens. Never raises for a failed drill."""

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    result = DrillResult(spec, f"INC-{stamp}-{spec.name}", Timeline())
    tl = result.timeline
    if problem := _spec_problem(spec):
        result.errors.append(problem)
        return _finish(result, reports_dir, write_incident_record)
    if missed := [d.name for d in spec.steady if not d.ask()]:
        result.errors.append(f"steady state not met before the fault: {', '.join(missed)}")
        return _finish(result, reports_dir, write_incident_record)
    tl.mark("steady_state_ok", ", ".join(d.name for d in spec.steady))
    before = _snapshot(spec)
    result.integrity_notes = before.notes if before is not None else ["no DSN: not checked"]
    effect_seen = recovered = False
    with AvailabilityProbe(spec.availability_url, tl.now) as probe:
        try:
            # the outage may begin during inject() (a stop, a restart): its duration is kept
            tl.mark("injecting", spec.fault.describe())
            spec.fault.inject()
            tl.mark("injected", spec.fault.describe())
            effect_seen, recovered = _while_faulty(spec, result)
        except FaultNotEffective as exc:
            result.errors.append(str(exc))
        finally:
            tl.mark("reverting", spec.fault.undo_summary or spec.fault.describe())
            spec.fault.revert()
            result.actions.append(
                f"fault reverted: {spec.fault.undo_summary or spec.fault.describe()}"
            )
            tl.mark("reverted", spec.fault.describe())
        after = _steady(spec, tl, "steady_after_revert")
        if effect_seen and not recovered:
            result.errors.append(
                RECOVERY_INCOMPLETE
                if not after
                else f"did not recover: {', '.join(after)} still failing after the revert"
            )
        elif recovered and after:
            result.errors.append(f"steady state lost after the revert: {', '.join(after)}")
        skipped = _mark_skipped(spec.resolved, tl, "resolved")
        for det in wait_all(spec.resolved, tl.now):
            if det.name in skipped:
                continue
            if det.t is None:
                result.errors.append(f"not resolved: {det.name}")
            else:
                tl.mark("resolved", det.name, at=det.t)
    result.failed_probes, result.total_probes = probe.failed, probe.total
    result.downtime = probe.downtime()
    result.samples = [(s.t, s.ok, s.status, round(s.latency, 4)) for s in probe.samples]
    if before is not None and recovered:
        point = spec.recovery_point() if spec.recovery_point is not None else None
        audit = before.audit(_snapshot(spec, before) or before, point)
        result.integrity_problems = audit.problems
        result.integrity_window = audit.window_note()
        result.errors += [f"data lost: {p}" for p in result.integrity_problems]
    result.passed = not result.errors
    return _finish(result, reports_dir, write_incident_record)


def _mark_skipped(detectors: list[Detector], tl: Timeline, event: str) -> set[str]:
    """Detectors this target cannot ask: on the timeline and counted, neither passed nor failed."""
    for det in detectors:
        if det.skipped:
            tl.mark(f"{event}_skipped", f"{det.name}: skipped: {det.skipped}")
    return {d.name for d in detectors if d.skipped}


def _snapshot(spec: DrillSpec, before: IntegritySnapshot | None = None) -> IntegritySnapshot | None:
    """Checksums of every table, model file and the newest backup (None without a DSN)."""
    ep = spec.endpoints
    if ep is not None and spec.endpoints_now is not None:
        ep = spec.endpoints_now()
    dsn = spec.dsn or (ep.dsn if ep is not None else None)
    if dsn is None:
        return None
    models, backups = (ep.models_dir, ep.backups_dir) if ep is not None else (None, None)
    return take_snapshot(dsn, models, backups, before, spec.files_run)


def _while_faulty(spec: DrillSpec, result: DrillResult) -> tuple[bool, bool]:
    """Effect, detection, procedure and the steady state, all with the fault in place.

    Returns (effect seen, steady state restored before the revert). The detectors are polled
    from the end of the injection, concurrently with the effect probe, so a slow effect probe
    cannot delay detection; their answers count only once the effect is proven."""
    tl = result.timeline
    detection = Polling(spec.detectors, tl.now)
    (effect,) = wait_all([spec.effect], tl.now)
    if effect.t is None:
        detection.cancel()
        tl.mark("effect_timeout", spec.effect.name)
        raise FaultNotEffective(
            f"{spec.fault.describe()} was injected but {spec.effect.name!r} was not "
            f"seen within {spec.effect.timeout:.0f} s"
        )
    tl.mark("effect_seen", spec.effect.name, at=effect.t)
    result.detections = detection.join()
    skipped = _mark_skipped(spec.detectors, tl, "detected")
    for det in result.detections:
        if det.name in skipped:
            continue
        if det.t is None:
            tl.mark("detected_timeout", det.name)
        else:
            tl.mark("detected", det.name, at=det.t)
    if missed := [d.name for d in result.detections if d.t is None and d.name not in skipped]:
        result.errors.append(f"not detected: {', '.join(missed)}")
    elif spec.detectors and len(skipped) == len(spec.detectors):
        result.errors.append("not detected: every detector was skipped on this target")
    if spec.hold:
        time.sleep(spec.hold)  # the fault's duration is part of the scenario
    if spec.recover is not None:
        tl.mark("procedure_started", spec.recover.describe())
        try:
            result.actions += spec.recover.run(tl)
        except ProcedureFailed as exc:
            result.errors.append(f"recovery procedure failed: {exc}")
            return True, False
        tl.mark("procedure_finished", spec.recover.describe())
    if _steady(spec, tl, "steady_again"):
        return True, False
    result.recovered_by = (
        spec.recover.describe()
        if spec.recover is not None and not spec.fault.recovers_by_itself
        else f"the stack itself ({spec.fault.recovers_reason})"
    )
    tl.mark("recovered", f"steady state restored by {result.recovered_by}")
    return True, True


def _finish(result: DrillResult, reports_dir: Path | None, write: Callable) -> DrillResult:  # type: ignore[type-arg]
    if reports_dir is not None:
        result.record_path = write(result, reports_dir)
    events.emit("drill_finished", result=result)
    return result
