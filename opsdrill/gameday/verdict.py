"""Verdicts of a game day and its suites: PASSED only for what was shown.

FAILED beats INCOMPLETE beats PASSED: a skipped test that the game-day plan does not expect on
this machine means something the game day was meant to show was not shown (INCOMPLETE); it can
never be read as a pass, and it has its own exit code so a pipeline can tell it from a failure.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

from opsdrill.exitcodes import ExitCode

__all__ = ["Verdict"]


class Verdict(enum.StrEnum):
    PASSED = "PASSED"
    INCOMPLETE = "INCOMPLETE"
    FAILED = "FAILED"

    @property
    def exit_code(self) -> ExitCode:
        return _EXIT[self]

    @classmethod
    def worst(cls, verdicts: Iterable[Verdict]) -> Verdict:
        """The verdict of a whole made of parts; PASSED for no parts at all is the caller's call."""
        return max(verdicts, key=_ORDER.index, default=cls.PASSED)


_ORDER = [Verdict.PASSED, Verdict.INCOMPLETE, Verdict.FAILED]
_EXIT = {
    Verdict.PASSED: ExitCode.OK,
    Verdict.INCOMPLETE: ExitCode.INCOMPLETE,
    Verdict.FAILED: ExitCode.FAILED,
}
