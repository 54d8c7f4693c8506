"""Drills: a real fault, proof it took effect, measured detection and recovery, nothing lost."""

from opsdrill.drill.availability import AvailabilityProbe
from opsdrill.drill.integrity import IntegritySnapshot
from opsdrill.drill.runner import Detector, DrillResult, DrillSpec, run_drill
from opsdrill.drill.timeline import Event, Timeline

__all__ = [
    "AvailabilityProbe",
    "Detector",
    "DrillResult",
    "DrillSpec",
    "Event",
    "IntegritySnapshot",
    "Timeline",
    "run_drill",
]
