"""A drill's incident record (runbook §9) as one typed, versioned artefact: written once, by
the drill runner, and read by the report, the game-day summary and anyone else.

`schema` says which shape a file has. A reader takes every record of this schema or an older
one (fields an older record lacks take their defaults: a record from before procedures were
recorded has none), and refuses one from a newer opsdrill in one sentence rather than misread
it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from opsdrill.errors import UsageError

__all__ = ["SCHEMA", "Incident"]

#: the incident JSON's shape; raise it when a field changes meaning or goes away
SCHEMA = 1


@dataclass(frozen=True)
class Incident:
    """What one drill showed, with the figures read off it (seconds, None: not seen)."""

    incident_id: str
    drill: str
    title: str = ""
    runbook: str = ""
    severity: str = ""
    fault: str = ""
    passed: bool = False
    injection_seconds: float | None = None
    mttd_seconds: float | None = None
    mttd_alert_seconds: float | None = None
    mttd_probe_seconds: float | None = None
    mttd_alert_production_seconds: float | None = None
    mttr_seconds: float | None = None
    recovered_by: str | None = None
    #: the recovery procedure: runbook, title and its timed steps; None: none was run
    procedure: dict[str, Any] | None = None
    #: each detector that fired: detector, kind (alert or probe), t, note
    detections: list[dict[str, Any]] = field(default_factory=list)
    failed_probes: int = 0
    total_probes: int = 0
    downtime_seconds: float = 0.0
    integrity_problems: list[str] = field(default_factory=list)
    integrity_notes: list[str] = field(default_factory=list)
    integrity_window: Any = None
    errors: list[str] = field(default_factory=list)
    skipped_detectors: list[str] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)
    #: the drill's events on its monotonic clock: name, t, detail, wall time
    timeline: list[dict[str, Any]] = field(default_factory=list)
    #: the availability probe: (t, ok, status, latency) per sample
    samples: list[list[Any]] = field(default_factory=list)
    #: False for a record from before drills named their procedure (its `procedure` unknown)
    procedure_recorded: bool = True
    schema: int = SCHEMA

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Incident:
        """A record as written by this opsdrill or an older one; unknown keys are ignored."""
        schema = int(data.get("schema", 0))
        if schema > SCHEMA:
            raise UsageError(
                f"incident {data.get('incident_id', '?')} has schema {schema}, newer than this "
                f"opsdrill reads ({SCHEMA}): read it with the opsdrill that wrote it"
            )
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known and v is not None}
        values.setdefault("drill", "?")
        values.setdefault("incident_id", "")
        values["procedure_recorded"] = "procedure" in data
        values["schema"] = SCHEMA
        return cls(**values)

    @classmethod
    def read(cls, path: Path) -> Incident:
        return cls.from_dict(json.loads(path.read_text()))

    def write(self, folder: Path) -> Path:
        """`<folder>/<incident id>.json`, its path."""
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{self.incident_id}.json"
        path.write_text(self.to_json())
        return path
