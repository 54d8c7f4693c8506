"""Drills: a real fault, proof it took effect, measured detection and recovery, nothing lost."""

from opsdrill.drill.availability import AvailabilityProbe
from opsdrill.drill.detector import Detection, Detector
from opsdrill.drill.integrity import IntegritySnapshot
from opsdrill.drill.result import RECOVERY_INCOMPLETE, DrillResult
from opsdrill.drill.runner import run_drill
from opsdrill.drill.spec import DrillSpec
from opsdrill.drill.timeline import Event, StepRecord, Timeline

__all__ = [
    "RECOVERY_INCOMPLETE",
    "AvailabilityProbe",
    "Detection",
    "Detector",
    "DrillResult",
    "DrillSpec",
    "Event",
    "IntegritySnapshot",
    "StepRecord",
    "Timeline",
    "run_drill",
]
