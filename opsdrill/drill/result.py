"""What one drill showed: its timeline, detections, integrity and errors, with the figures
(MTTD, MTTR) read off them; the incident record and the report are written from it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from opsdrill.drill.detector import Detection
from opsdrill.drill.incident import Incident
from opsdrill.drill.spec import DrillSpec
from opsdrill.drill.timeline import Timeline

__all__ = ["RECOVERY_INCOMPLETE", "DrillResult"]

RECOVERY_INCOMPLETE = (
    "recovery incomplete: steady state came back only when the harness reverted the fault"
)


@dataclass
class DrillResult:
    spec: DrillSpec
    incident_id: str
    timeline: Timeline
    passed: bool = False
    errors: list[str] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)
    detections: list[Detection] = field(default_factory=list)
    recovered_by: str = ""  # the procedure, or why the stack recovered by itself
    failed_probes: int = 0
    total_probes: int = 0
    downtime: float = 0.0
    integrity_problems: list[str] = field(default_factory=list)
    integrity_notes: list[str] = field(default_factory=list)  # what the oracle could not cover
    #: what a restore's recovery point cost: rows committed after the backup, lost by design
    integrity_window: str | None = None
    record_path: Path | None = None
    #: (t, ok, status, latency seconds) of every availability probe, for plots
    samples: list[tuple[float, bool, int, float]] = field(default_factory=list)

    def _after_injection(self, kind: str | None) -> float | None:
        start = self.timeline.first("injected")
        seen = [d.t for d in self.detections if d.t is not None and kind in (None, d.kind)]
        if start is None or not seen:
            return None
        return round(max(0.0, min(seen) - start.t), 3)

    @property
    def injection_seconds(self) -> float | None:
        """How long inject() itself took (a stop, a restart): kept apart from the MTTD."""
        return self.timeline.between("injecting", "injected")

    @property
    def mttd(self) -> float | None:
        """End of the injection → the first of the runbook's detectors said yes."""
        return self._after_injection(None)

    @property
    def mttd_alert(self) -> float | None:
        return self._after_injection("alert")

    @property
    def mttd_probe(self) -> float | None:
        return self._after_injection("probe")

    @property
    def mttd_alert_production(self) -> float | None:
        """The alert's MTTD with its `for:` at production scale (see drill.alert_scale)."""
        first = min(
            (d for d in self.detections if d.kind == "alert" and d.t is not None),
            key=lambda d: d.t or 0.0,
            default=None,
        )
        if first is None or self.mttd_alert is None:
            return None
        det = next((x for x in self.spec.detectors if x.name == first.name), None)
        return round(self.mttd_alert + (det.production_offset if det else 0.0), 3)

    @property
    def mttr(self) -> float | None:
        """Start of the injection → steady state restored by the procedure (never the revert)."""
        return self.timeline.between("injecting", "recovered")

    @property
    def skipped_detectors(self) -> list[str]:
        """'<detector>: skipped: <reason>' for each detector this target could not ask."""
        return [e.detail for e in self.timeline.events if e.name.endswith("_skipped")]

    @property
    def summary(self) -> str:
        if self.passed:
            detected = "not looked for" if self.mttd is None else f"{self.mttd:.2f} s"
            return (
                f"Detection after the injection: {detected}; the stack was back to its steady "
                f"state {self.mttr or 0:.2f} s after injection through {self.recovered_by}, "
                "with nothing lost."
            )
        return "The drill failed: " + "; ".join(self.errors)

    def incident(self) -> Incident:
        """The incident record's typed artefact (what `record.py` writes, the report reads)."""
        proc = self.spec.recover
        return Incident.from_dict(
            {
                "incident_id": self.incident_id,
                "drill": self.spec.name,
                "title": self.spec.title,
                "runbook": self.spec.runbook,
                "severity": self.spec.severity,
                "fault": self.spec.fault.describe(),
                "passed": self.passed,
                "injection_seconds": self.injection_seconds,
                "mttd_seconds": self.mttd,
                "mttd_alert_seconds": self.mttd_alert,
                "mttd_probe_seconds": self.mttd_probe,
                "mttd_alert_production_seconds": self.mttd_alert_production,
                "mttr_seconds": self.mttr,
                "recovered_by": self.recovered_by,
                "procedure": None
                if proc is None
                else {
                    "runbook": proc.runbook,
                    "title": proc.title,
                    "steps": self.timeline.steps_to_list(),
                },
                "detections": [
                    {"detector": d.name, "kind": d.kind, "t": d.t, "note": _note(self.spec, d.name)}
                    for d in self.detections
                ],
                "failed_probes": self.failed_probes,
                "total_probes": self.total_probes,
                "downtime_seconds": self.downtime,
                "integrity_problems": self.integrity_problems,
                "integrity_notes": self.integrity_notes,
                "integrity_window": self.integrity_window,
                "errors": self.errors,
                "skipped_detectors": self.skipped_detectors,
                "actions": self.actions,
                "timeline": self.timeline.to_list(),
                "samples": [list(s) for s in self.samples],
            }
        )


def _note(spec: DrillSpec, name: str) -> str:
    return next((d.note for d in spec.detectors if d.name == name), "")
