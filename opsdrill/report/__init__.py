"""Reports people read: one self-contained HTML page per run, rebuilt from its artefacts."""

from opsdrill.report.build import build_report
from opsdrill.report.collect import RunArtefacts

__all__ = ["RunArtefacts", "build_report"]
