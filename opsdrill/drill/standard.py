"""A drill on the reference stack with its defaults filled in, so a chaos module states only
what is its own: the fault, the proof it took effect, the detectors and the recovery.

The defaults are the ones every drill repeated: the runbook section (the test's `runbook`
marker), the availability probe on the API's /health, the target's endpoints (so the
integrity snapshot covers the database, the model files and the newest backup) and the
standard steady state (/health answers 200 and a forecast succeeds)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from opsdrill.drill.detector import Detector
from opsdrill.drill.detectors import FaultProbes, Probes
from opsdrill.drill.result import DrillResult
from opsdrill.drill.runner import run_drill
from opsdrill.drill.spec import DrillSpec
from opsdrill.targets.base import Target

Check = Callable[[DrillResult], None]


@dataclass
class StandardDrill:
    """Builds and runs drills against `target` for runbook section `runbook`."""

    target: Target
    runbook: str
    incident_dir: Path | None = None
    #: what a finished drill must satisfy (the chaos suite's `assert_drill`)
    check: Check | None = field(default=None, repr=False)

    @cached_property
    def probes(self) -> Probes:
        return Probes(self.target)

    @cached_property
    def faults(self) -> FaultProbes:
        return FaultProbes(self.target)

    def steady(self) -> list[Detector]:
        """The standard steady state: /health answers 200 and a forecast succeeds."""
        return self.probes.steady()

    def spec(self, *, also_steady: list[Detector] | None = None, **fields: Any) -> DrillSpec:
        """A DrillSpec from `fields`, the defaults filled in where `fields` names none;
        `also_steady` adds detectors to the standard steady state."""
        fields.setdefault("runbook", self.runbook)
        fields.setdefault("steady", [*self.steady(), *(also_steady or [])])
        fields.setdefault("availability_url", f"{self.target.endpoints.api_url}/health")
        if "dsn" not in fields and "endpoints" not in fields:
            fields["endpoints"] = self.target.endpoints
            fields.setdefault("endpoints_now", lambda: self.target.endpoints)
        if "exec" in self.target.capabilities and "api" in self.target.services:
            target = self.target  # files the integrity snapshot cannot read here, read there
            fields.setdefault("files_run", lambda argv: target.exec("api", argv, timeout=120))
        return DrillSpec(**fields)

    def run(self, spec: DrillSpec, *, check: bool = True) -> DrillResult:
        """Run `spec`, writing its incident record, and (unless `check` is False) assert what
        every drill must show: passed, figures recorded, incident record complete."""
        if self.incident_dir is None:
            raise ValueError("this drill has no incident directory to write its record to")
        result = run_drill(spec, self.incident_dir)
        if check:
            self.verify(result)
        return result

    def verify(self, result: DrillResult) -> None:
        if self.check is not None:
            self.check(result)
        elif not result.passed:
            raise AssertionError("\n".join(result.errors) or f"drill {result.spec.name} failed")
