"""Alert MTTD at production scale: the embedded stack shortens every rule's `for:` and range
window (recorded in `monitoring/prometheus/shortened.json` of its state directory), so an
alert fires there in seconds where production would wait minutes.

A drill shows the alert's measured MTTD next to the production expectation: measured, plus
what the `for:` was shortened by. (Scrape and evaluation intervals add up to one of each
again in production; they are named in the note, not added.)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from opsdrill.durations import milliseconds
from opsdrill.monitoring.prometheus_files import SHORTENED

if TYPE_CHECKING:
    from opsdrill.targets.base import Target

__all__ = [
    "ScaledRule",
    "alert_scaling",
    "load_shortened",
    "parse_shortened",
    "target_alert_scaling",
]


@dataclass(frozen=True)
class ScaledRule:
    """One alert's `for:` as the embedded stack runs it, and as production does."""

    alert: str
    here: str  # e.g. "1s"
    production: str  # e.g. "1m"

    @property
    def offset(self) -> float:
        """Seconds production waits longer before firing."""
        return (milliseconds(self.production) - milliseconds(self.here)) / 1000

    @property
    def factor(self) -> float:
        here = milliseconds(self.here)
        return milliseconds(self.production) / here if here else 1.0

    def note(self) -> str:
        return (
            f"rule windows scaled ×{self.factor:g} on this target: `for:` {self.here} "
            f"here, {self.production} in production (+{self.offset:g} s; scrape and evaluation "
            "intervals add to it there)"
        )


def load_shortened(path: Path) -> dict[str, ScaledRule]:
    """alert name -> its scaled `for:`, from a shortened.json; empty when there is none."""
    try:
        return parse_shortened(path.read_text())
    except OSError:
        return {}


def parse_shortened(text: str | None) -> dict[str, ScaledRule]:
    """alert name -> its scaled `for:`, from a shortened.json's text; empty when none."""
    try:
        changes = json.loads(text or "[]")
    except ValueError:
        return {}
    return {
        c["alert"]: ScaledRule(c["alert"], c["after"], c["before"])
        for c in changes
        if c.get("field") == "for" and c.get("alert")
    }


def alert_scaling(state_dir: Path | None) -> dict[str, ScaledRule]:
    """The scaled alerts of a stack whose state directory is `state_dir` (None: none known)."""
    return {} if state_dir is None else load_shortened(state_dir / SHORTENED)


def target_alert_scaling(target: Target) -> dict[str, ScaledRule]:
    """The scaled alerts of `target`'s Prometheus (`Target.rule_scaling_text`)."""
    return parse_shortened(target.rule_scaling_text())
