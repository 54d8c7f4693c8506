"""Every error opsdrill raises on purpose, in one tree.

    OpsdrillError                  a problem the user can act on; str() says what and how
    ├── UsageError                 a bad flag, a bad target spec, a bad file
    ├── TargetUnreachable          an endpoint that does not answer
    ├── MissingDependency          a binary or package that is not installed
    ├── PrivilegeError             e.g. PostgreSQL as root without a `postgres` user
    ├── DestructiveRefused         a destructive action against a production target
    ├── TargetBusy                 another session holds the target's lock past the wait
    ├── ServiceError               a service that would not start, stop or become ready
    │   └── StartTimeout
    ├── FaultNotEffective          a fault was injected but had no observable effect
    ├── CapabilityMissing          the target cannot provide what a drill needs (it skips)
    ├── WaitTimedOut               a condition polled for did not come within its deadline
    └── RevertFailed               undoing a fault failed; the state may be dirty

The CLI maps each to an exit code in one place (`opsdrill.exitcodes`); anything else is a bug
and is shown as one.
"""

from __future__ import annotations

__all__ = [
    "CapabilityMissing",
    "DestructiveRefused",
    "FaultNotEffective",
    "MissingDependency",
    "OpsdrillError",
    "PrivilegeError",
    "RevertFailed",
    "ServiceError",
    "StartTimeout",
    "TargetBusy",
    "TargetUnreachable",
    "UsageError",
    "WaitTimedOut",
]


class OpsdrillError(Exception):
    """Base class: the message is one sentence saying what is wrong and what to do."""


class UsageError(OpsdrillError):
    """The user asked for something malformed (flag, target spec, file)."""


class TargetUnreachable(OpsdrillError):
    """An endpoint of the target does not answer."""


class MissingDependency(OpsdrillError):
    """A required binary or package is not installed."""


class PrivilegeError(OpsdrillError):
    """The process lacks (or has too much of) a privilege a service needs."""


class DestructiveRefused(OpsdrillError):
    """A destructive action was asked of a target that does not allow it."""


class TargetBusy(OpsdrillError):
    """Another session holds the target's lock longer than this one may wait."""


class ServiceError(OpsdrillError):
    """A service of the stack would not start, stop or become ready."""


class StartTimeout(ServiceError):
    """A service started but never became ready within its deadline."""


class FaultNotEffective(OpsdrillError):
    """A fault was injected but the stack showed no sign of it."""


class RevertFailed(OpsdrillError):
    """Undoing a fault failed; the steady state may not be restored."""


class CapabilityMissing(OpsdrillError):
    """The target cannot provide what a drill needs; the drill skips with this sentence."""


class WaitTimedOut(OpsdrillError):
    """A condition polled for (`opsdrill.polling.wait_for`) did not come by its deadline."""
