"""Exit codes of the `opsdrill` command, mapped from exceptions in one place."""

from __future__ import annotations

import enum

from opsdrill import errors

__all__ = ["ExitCode", "exit_code_for"]


class ExitCode(enum.IntEnum):
    OK = 0
    FAILED = 1  # the stack or a suite failed: the gate says no
    USAGE = 2  # bad flag, bad target, unreachable target: nothing was judged
    ENVIRONMENT = 3  # a missing binary or privilege: fix the machine, then retry
    INCOMPLETE = 4  # nothing failed, but something the game day was meant to show was skipped
    INTERRUPTED = 130


def exit_code_for(exc: BaseException) -> ExitCode:
    """Map an exception to the exit code that tells a pipeline what kind of failure it was."""
    if isinstance(exc, KeyboardInterrupt):
        return ExitCode.INTERRUPTED
    if isinstance(exc, errors.UsageError | errors.TargetUnreachable | errors.DestructiveRefused):
        return ExitCode.USAGE
    if isinstance(exc, errors.MissingDependency | errors.PrivilegeError):
        return ExitCode.ENVIRONMENT
    return ExitCode.FAILED
