"""A runbook procedure as code: its runbook id, its title and its ordered steps.

A drill runs the procedure that the runbook prescribes for its incident; each step is timed
on the drill's timeline (`Timeline.begin_step` / `end_step`), so the MTTR says how long the
procedure took and which step took it. A step that raises stops the procedure: the next
steps of a runbook assume the earlier ones worked.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from opsdrill.errors import OpsdrillError

if TYPE_CHECKING:
    from opsdrill.drill.timeline import Timeline

__all__ = ["Procedure", "ProcedureFailed", "Step", "procedure"]

#: what a step returns: the lines it reports (what it found, what it did), or nothing
StepOutput = str | Sequence[str] | None


class ProcedureFailed(OpsdrillError):
    """A step of a recovery procedure failed; the message names the procedure and the step."""


@dataclass(frozen=True)
class Step:
    title: str  # in the runbook's words: "start PostgreSQL", "confirm /health"
    action: Callable[[], StepOutput]


@dataclass(frozen=True)
class Procedure:
    runbook: str  # the runbook's id, e.g. "5.2.2"
    title: str  # e.g. "fix 1: start PostgreSQL"
    steps: tuple[Step, ...]

    def describe(self) -> str:
        return f"§{self.runbook} {self.title}"

    def run(self, timeline: Timeline | None = None) -> list[str]:
        """Run every step in order; the lines they reported. ProcedureFailed on a failed step."""
        actions: list[str] = []
        for step in self.steps:
            record = timeline.begin_step(self.runbook, self.title, step.title) if timeline else None
            try:
                out = step.action()
            except Exception as exc:
                if record is not None and timeline is not None:
                    timeline.end_step(record, [], error=str(exc) or type(exc).__name__)
                raise ProcedureFailed(
                    f"{self.describe()}: step {step.title!r} failed: {exc}"
                ) from exc
            lines = [out] if isinstance(out, str) else list(out or [])
            if record is not None and timeline is not None:
                timeline.end_step(record, lines)
            actions += lines
        return actions

    def without_effect(self) -> Procedure:
        """The same procedure with every step doing nothing: for meta-tests that must see a
        drill fail when its procedure does not recover."""
        return Procedure(
            self.runbook,
            self.title,
            tuple(Step(s.title, _skipped) for s in self.steps),
        )


def _skipped() -> list[str]:
    return ["step skipped on purpose (procedure made a no-op)"]


def procedure(runbook: str, title: str, *steps: tuple[str, Callable[[], StepOutput]]) -> Procedure:
    """Shorthand: `procedure("5.2.2", "fix 1", ("start PostgreSQL", start), ...)`."""
    return Procedure(runbook, title, tuple(Step(name, action) for name, action in steps))
