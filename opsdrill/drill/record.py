"""Incident records in the runbook's §9 format, one per drill, Markdown and JSON.

A drill is a rehearsed incident: the record is what the on-call engineer would have written,
with the root cause known because we caused it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from opsdrill.drill.result import DrillResult

__all__ = ["write_incident_record"]


def write_incident_record(result: DrillResult, out_dir: Path) -> Path:
    """Write `<incident id>.md` and `.json` under `out_dir/incidents/`; return the .md path."""
    folder = out_dir / "incidents"
    result.incident().write(folder)
    path = folder / f"{result.incident_id}.md"
    path.write_text(_markdown(result))
    return path


def _fmt(seconds: float | None) -> str:
    return "–" if seconds is None else f"{seconds:.2f} s"


def _integrity(r: DrillResult) -> str:
    if r.integrity_problems:
        return "; ".join(r.integrity_problems)
    if not r.timeline.first("recovered"):
        return "not checked"
    notes = "".join(f"; {n}" for n in r.integrity_notes)
    if r.integrity_window:  # a restore: judged against what its backup holds
        return (
            "no row the recovery point holds, model file or the newest backup lost or altered; "
            + r.integrity_window
            + notes
        )
    return "no committed row, model file or the newest backup lost or altered" + notes


def _detection(r: DrillResult) -> list[str]:
    """Each detector's time after the injection, "skipped: why" for one this target could not
    ask (never "never": it was not asked), and the alert's rule-window scaling."""
    if not r.detections:
        return []
    start = r.timeline.first("injected")
    lines = [
        "## Detection",
        "",
        "| detector | kind | after injection | note |",
        "|---|---|---:|---|",
    ]
    for d in r.detections:
        spec = next((x for x in r.spec.detectors if x.name == d.name), None)
        if spec is not None and spec.skipped:
            when = f"skipped: {spec.skipped}"
        elif d.t is None or start is None:
            when = "never"
        else:
            when = _fmt(max(0.0, d.t - start.t))  # polled from the end of the injection
        lines.append(f"| {d.name} | {d.kind} | {when} | {spec.note if spec else ''} |")
    return [*lines, ""]


def _scaling(r: DrillResult) -> str:
    """How the first alert that fired is scaled here (its detector's note), if it is."""
    fired = sorted((d for d in r.detections if d.kind == "alert" and d.t is not None),
                   key=lambda d: d.t or 0.0)  # fmt: skip
    notes = [x.note for d in fired for x in r.spec.detectors if x.name == d.name and x.note]
    return f" ({notes[0]})" if notes else ""


def _procedure(r: DrillResult) -> list[str]:
    """The procedure with each step's start, duration and result; or why there is none."""
    proc = r.spec.recover
    if proc is None and not r.spec.fault.recovers_by_itself:
        return ["No procedure named, and the fault does not recover by itself.", ""]
    if proc is None:
        rode = "the stack rode it out" if r.recovered_by else "the stack did not ride it out"
        return [f"No procedure: the fault is transient by nature "
                f"({r.spec.fault.recovers_reason}); {rode}.", ""]  # fmt: skip
    took = r.timeline.between("procedure_started", "procedure_finished")
    outcome = "steady state restored by it" if r.recovered_by else "steady state NOT restored by it"
    lines = [f"Procedure {proc.describe()} (took {_fmt(took)}; {outcome}):", "",
             "| step | start (s) | took | status | result |",
             "|---|---:|---:|---|---|"]  # fmt: skip
    for s in r.timeline.steps:
        result = s.error or "; ".join(s.actions)
        lines.append(f"| {s.step} | {s.start:.3f} | {_fmt(s.duration)} | {s.status} | {result} |")
    return [*lines, ""]


def _where(r: DrillResult) -> str:
    """The target the fault went into, as the record names it."""
    target = r.spec.fault.target
    name, kind = getattr(target, "name", None), getattr(target, "kind", None)
    return f"target {name} ({kind})" if name and kind else "the target"


def _markdown(r: DrillResult) -> str:
    detected = r.timeline.first("detected")
    recovered = r.timeline.first("recovered")
    lines = [
        f"# Incident {r.incident_id}: {r.spec.title}",
        "",
        "| field | value |",
        "|---|---|",
        f"| severity | {r.spec.severity} |",
        f"| runbook procedure | {r.spec.runbook} |",
        f"| verdict | {'PASSED' if r.passed else 'FAILED'} |",
        f"| detected | {detected.wall if detected else 'never'} |",
        f"| resolved | {recovered.wall if recovered else 'never'} |",
        f"| injection took (not counted in MTTD) | {_fmt(r.injection_seconds)} |",
        f"| MTTD (end of injection → first detector) | {_fmt(r.mttd)} |",
        f"| MTTD by the alert (rules as this target runs them) | {_fmt(r.mttd_alert)} |",
        f"| MTTD by the alert, rule windows at production scale | "
        f"{_fmt(r.mttd_alert_production)}{_scaling(r)} |",
        f"| MTTD by the harness's probes | {_fmt(r.mttd_probe)} |",
        f"| MTTR (start of injection → steady state restored, before the revert) | "
        f"{_fmt(r.mttr)} |",
        f"| recovered by | {r.recovered_by or 'not recovered before the revert'} |",
        f"| detectors skipped on this target | {'; '.join(r.skipped_detectors) or 'none'} |",
        "",
        *_detection(r),
        "## Summary",
        "",
        f"Drill `{r.spec.name}`: {r.spec.fault.describe()} was injected on purpose into "
        f"{_where(r)}. {r.summary}",
        "",
        "## Impact",
        "",
        f"- service: {r.spec.fault.blast_radius or 'see the fault'}",
        f"- failed availability probes: {r.failed_probes} of {r.total_probes} "
        f"({r.downtime:.2f} s of observed downtime)",
        f"- data integrity: {_integrity(r)}",
        "",
        "## Timeline",
        "",
        "| t (s) | time (UTC) | event | detail |",
        "|---:|---|---|---|",
        *(f"| {e.t:.3f} | {e.wall} | {e.name} | {e.detail} |" for e in r.timeline.events),
        "",
        "## Root cause",
        "",
        f"Injected fault: {r.spec.fault.describe()} — {type(r.spec.fault).__doc__ or ''}".strip(),
        "",
        "## Actions taken",
        "",
        *_procedure(r),
        *(f"- {a}" for a in r.actions),
        "",
    ]
    if r.errors:
        lines += ["## Drill failures", "", *(f"- {e}" for e in r.errors), ""]
    return "\n".join(lines)
