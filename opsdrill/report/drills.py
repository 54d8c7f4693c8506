"""A drill's incident JSON read back for people: how it recovered, how fast it was seen.

The HTML report and the game day's summary show the same things, so they read them here:
the runbook procedure that recovered the drill (or that the stack rode the fault out), its
timed steps, the alert's MTTD apart from the harness probe's (and at production scale, since
the embedded stack shortens rule windows), detectors this target could not ask, and MTTR
grouped by procedure. Records written before these fields existed read as unknown (None),
never as a made-up value.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

from opsdrill.drill.incident import Incident

__all__ = [
    "RODE_IT_OUT",
    "DrillView",
    "ProcedureMttr",
    "StepView",
    "drill_view",
    "mttr_by_procedure",
]

#: the "procedure" of a fault that is transient by nature: the stack recovers by itself
RODE_IT_OUT = "rode it out (no procedure)"


@dataclass(frozen=True)
class StepView:
    step: str
    duration: float | None
    status: str  # succeeded, failed, running
    result: str  # what it did, or why it failed


@dataclass(frozen=True)
class DrillView:
    drill: str
    incident_id: str
    runbook: str
    passed: bool
    #: "§5.2.2 fix 1: start PostgreSQL", RODE_IT_OUT, or "" for a record older than procedures
    procedure: str
    recovered_by: str  # what restored the steady state; "" when it was not restored
    steps: list[StepView]
    injection_seconds: float | None
    mttd_seconds: float | None  # end of injection → first detector
    mttd_alert_seconds: float | None
    mttd_alert_production_seconds: float | None
    alert_note: str  # how the embedded stack scales the alert's rule windows
    mttd_probe_seconds: float | None
    mttr_seconds: float | None
    failed_probes: int
    total_probes: int
    skipped_detectors: list[str] = field(default_factory=list)  # "<name>: skipped: <why>"

    @property
    def rode_it_out(self) -> bool:
        return self.procedure == RODE_IT_OUT

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"rode_it_out": self.rode_it_out}


def _procedure(inc: Incident) -> str:
    if not inc.procedure_recorded:
        return ""  # written before drills named their procedure
    proc = inc.procedure
    if not proc:
        return RODE_IT_OUT
    return f"§{proc.get('runbook', '?')} {proc.get('title', '')}".strip()


def _steps(inc: Incident) -> list[StepView]:
    steps = (inc.procedure or {}).get("steps") or []
    return [
        StepView(
            str(s.get("step", "?")),
            s.get("duration"),
            str(s.get("status", "")),
            str(s.get("error") or "; ".join(s.get("actions") or [])),
        )
        for s in steps
    ]


def _alert_note(inc: Incident) -> str:
    """The note of the alert that fired first (else of any alert): its rule-window scaling."""
    alerts = [d for d in inc.detections if d.get("kind") == "alert"]
    alerts.sort(key=lambda d: (d.get("t") is None, d.get("t") or 0.0))
    return next((str(d["note"]) for d in alerts if d.get("note")), "")


def drill_view(inc: Incident) -> DrillView:
    """The view of one incident record, old or new."""
    return DrillView(
        drill=inc.drill,
        incident_id=inc.incident_id,
        runbook=inc.runbook,
        passed=inc.passed,
        procedure=_procedure(inc),
        recovered_by=inc.recovered_by or "",
        steps=_steps(inc),
        injection_seconds=inc.injection_seconds,
        mttd_seconds=inc.mttd_seconds,
        mttd_alert_seconds=inc.mttd_alert_seconds,
        mttd_alert_production_seconds=inc.mttd_alert_production_seconds,
        alert_note=_alert_note(inc),
        mttd_probe_seconds=inc.mttd_probe_seconds,
        mttr_seconds=inc.mttr_seconds,
        failed_probes=inc.failed_probes,
        total_probes=inc.total_probes,
        skipped_detectors=[str(s) for s in inc.skipped_detectors],
    )


@dataclass(frozen=True)
class ProcedureMttr:
    """MTTR of every drill a procedure recovered; drills it did not recover are counted."""

    procedure: str
    drills: list[str]
    mttrs: list[float]  # drills whose steady state came back (before the revert, since MTTR
    # ends when the procedure restored it: the runner records no MTTR otherwise)
    not_recovered: list[str]

    @property
    def median(self) -> float | None:
        return round(statistics.median(self.mttrs), 3) if self.mttrs else None

    @property
    def worst(self) -> float | None:
        return max(self.mttrs) if self.mttrs else None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"median_seconds": self.median, "max_seconds": self.worst}


def mttr_by_procedure(views: list[DrillView]) -> list[ProcedureMttr]:
    """One row per procedure (in order of first use), faults ridden out grouped as one."""
    groups: dict[str, list[DrillView]] = {}
    for v in views:
        groups.setdefault(v.procedure or "unknown (record predates procedures)", []).append(v)
    return [
        ProcedureMttr(
            name,
            [v.drill for v in vs],
            [v.mttr_seconds for v in vs if v.mttr_seconds is not None],
            [v.drill for v in vs if v.mttr_seconds is None],
        )
        for name, vs in groups.items()
    ]
