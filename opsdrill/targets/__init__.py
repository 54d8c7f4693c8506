"""Targets by spec string, in the manner of testinfra's backends: `local`, `local:/path`.

Backends are imported lazily, so a check run against one target never imports another's
dependencies; an unknown scheme is one clear error.
"""

from __future__ import annotations

from pathlib import Path

from opsdrill.errors import UsageError
from opsdrill.targets.base import Endpoints, Service, Target

__all__ = ["DEFAULT_STATE_DIR", "Endpoints", "Service", "Target", "parse_spec"]

DEFAULT_STATE_DIR = Path(".opsdrill")
SCHEMES = ("local",)


def parse_spec(spec: str) -> Target:
    """Build a target from `local` or `local:STATE_DIR`."""
    scheme, _, rest = spec.partition(":")
    if scheme == "local":
        from opsdrill.targets.local import LocalTarget

        return LocalTarget(Path(rest) if rest else DEFAULT_STATE_DIR)
    raise UsageError(
        f"unknown target {spec!r}: use one of {', '.join(SCHEMES)} "
        "(e.g. 'local' or 'local:/var/tmp/stack')"
    )
