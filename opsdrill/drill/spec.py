"""A drill as data: its fault, the proof it took effect, its detectors, the runbook's recovery
procedure and the steady state, which the runner, the plan and the report all read."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from opsdrill.drill.detector import Detector
from opsdrill.drill.integrity import IntegritySnapshot
from opsdrill.drill.integrity_files import RemoteRun
from opsdrill.drill.procedure import Procedure
from opsdrill.faults.base import Fault
from opsdrill.targets.model import Endpoints

__all__ = ["DrillSpec"]


@dataclass
class DrillSpec:
    name: str
    title: str
    runbook: str
    severity: str  # P0..P3, runbook §9
    fault: Fault
    effect: Detector  # proof the fault took effect; none within its timeout fails the drill
    detectors: list[Detector]  # how the stack notices: the runbook's alert and symptoms
    steady: list[Detector]  # true before the fault and again after recovery
    availability_url: str
    dsn: str | None = None  # for the integrity snapshot (endpoints.dsn when endpoints given)
    #: the target's endpoints: the integrity snapshot then covers the model files under
    #: models_dir and the newest backup in backups_dir too
    endpoints: Endpoints | None = None
    #: the target's endpoints as they are now, read again for the snapshot after recovery:
    #: a restarted container may be published on a new port (its DSN then differs)
    endpoints_now: Callable[[], Endpoints] | None = None
    #: runs a command where the app runs (Target.exec): the snapshot reads the model files
    #: and backups there when they are not readable on this machine (a container, a host)
    files_run: RemoteRun | None = None
    #: the runbook's recovery procedure. It must bring the steady state back with the fault's
    #: effect in place; the revert afterwards only removes what is left. None only for a
    #: fault that `recovers_by_itself`.
    recover: Procedure | None = None
    hold: float = 0.0  # keep the fault after detection, e.g. to let reconnect back-off grow
    resolved: list[Detector] = field(default_factory=list)  # e.g. the alert resolves
    recovery_timeout: float = 60.0  # how long the steady state may take to come back
    #: a restore's recovery point: what the restored backup holds, read after recovery. Rows
    #: committed after it and lost by the restore are reported as the window's loss; a row the
    #: backup holds must still survive
    recovery_point: Callable[[], IntegritySnapshot] | None = None
