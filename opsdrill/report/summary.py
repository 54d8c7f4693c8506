"""The game day summary's drill and SLO parts (summary.json and summary.md).

The same views as the HTML report (`report.drills`, `report.slo_view`), written as data and
as Markdown tables, so a summary read on its own shows how each drill recovered, how fast it
was detected by the alert and by the probe, and on what evidence each SLO was judged.
"""

from __future__ import annotations

from typing import Any

from opsdrill.drill.incident import Incident
from opsdrill.report.drills import DrillView, drill_view, mttr_by_procedure
from opsdrill.report.slo_view import gate_runs, gate_verdict, pct

__all__ = ["drill_data", "drill_lines", "slo_data", "slo_lines"]


def _s(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def drill_data(incidents: list[Incident]) -> dict[str, Any]:
    """summary.json's `drills` (one row per incident) and `mttr_by_procedure`."""
    views = [drill_view(i) for i in incidents]
    return {
        "drills": [v.as_dict() for v in views],
        "mttr_by_procedure": [p.as_dict() for p in mttr_by_procedure(views)],
    }


def _alert(v: DrillView) -> str:
    here, prod = _s(v.mttd_alert_seconds), v.mttd_alert_production_seconds
    if prod is None or prod == v.mttd_alert_seconds:
        return here
    return f"{here} (production ≈ {_s(prod)})"


def drill_lines(incidents: list[Incident]) -> list[str]:
    """## Drills: verdict, procedure, MTTDs and MTTR per drill; then MTTR by procedure and
    each procedure's steps with their durations."""
    if not incidents:
        return []
    views = [drill_view(i) for i in incidents]
    lines = [
        "", "## Drills", "",
        "MTTD: end of the injection → first of the runbook's detectors (the alert's and the "
        "harness probe's apart). MTTR: start of the injection → steady state restored by the "
        "runbook's procedure, before the harness reverts anything.",
        "",
        "| drill | runbook | verdict | recovery procedure | MTTD s | alert MTTD s | "
        "probe MTTD s | MTTR s | failed probes |",
        "|---|---|---|---|---:|---:|---:|---:|---:|",
    ]  # fmt: skip
    for v in views:
        cells = [v.drill, v.runbook, "PASS" if v.passed else "FAIL", v.procedure or "–",
                 _s(v.mttd_seconds), _alert(v), _s(v.mttd_probe_seconds), _s(v.mttr_seconds),
                 f"{v.failed_probes}/{v.total_probes}"]  # fmt: skip
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    notes = sorted({v.alert_note for v in views if v.alert_note})
    if notes:
        lines += ["", "Alert MTTD at production scale (in parentheses): "
                  + "; ".join(notes) + "."]  # fmt: skip
    lines += ["", "### MTTR by recovery procedure", "",
              "| procedure | drills | median MTTR s | worst MTTR s | not recovered by it |",
              "|---|---|---:|---:|---|"]  # fmt: skip
    for p in mttr_by_procedure(views):
        cells = [p.procedure, ", ".join(p.drills), _s(p.median), _s(p.worst),
                 ", ".join(p.not_recovered) or "–"]  # fmt: skip
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    lines += ["", "### Recovery steps", ""]
    for v in views:
        lines.append(f"- **{v.drill}**: {_recovery(v)}")
        lines += [f"  - skipped detector {s}" for s in v.skipped_detectors]
    return lines


def _recovery(v: DrillView) -> str:
    if v.rode_it_out:
        return f"rode it out — {v.recovered_by or 'the stack did not ride it out'}"
    if not v.procedure:
        return "procedure not recorded (incident record from before procedures)"
    steps = "; ".join(
        f"{s.step} {_s(s.duration)} s" + ("" if s.status == "succeeded" else f" ({s.status})")
        for s in v.steps
    )
    by = "" if v.recovered_by else " — steady state not restored by it"
    return f"{v.procedure}: {steps or 'no step ran'}{by}"


def slo_data(slo: dict[str, Any] | None) -> dict[str, Any] | None:
    """summary.json's `slo`: the gate's verdict and every profile's rows."""
    if not slo:
        return None
    return {
        "gate_verdict": gate_verdict(slo),
        "profiles": [g.as_dict() | {"rows": [r.as_dict() for r in g.rows]} for g in gate_runs(slo)],
    }


def slo_lines(slo: dict[str, Any] | None) -> list[str]:
    """## Service level objectives: per profile, each SLO's verdict and its evidence."""
    if not slo:
        return []
    lines = ["", "## Service level objectives", "",
             f"Load gate **{gate_verdict(slo)}**. MET: the one-sided bound on the bad ratio "
             "is within the error budget; BREACHED: beyond it; INCONCLUSIVE: too few events "
             "to tell."]  # fmt: skip
    for g in gate_runs(slo):
        name = f"Profile `{g.profile}`: " if g.profile else ""
        lines += ["", f"{name}{g.verdict}, {g.achieved_rate} of {g.target_rate} requests/s "
                  f"over {g.duration_s} s" + (f"; {g.load_problem}" if g.load_problem else "")
                  + ".", "",
                  "| SLO | objective | verdict | measured good | confidence bound | events | "
                  "note |", "|---|---|---|---:|---|---:|---|"]  # fmt: skip
        for r in g.rows:
            cells = [r.slo, r.objective, r.verdict, pct(r.good_ratio), r.bound, r.events,
                     r.why or "–"]  # fmt: skip
            lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return lines
