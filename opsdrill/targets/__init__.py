"""Targets by spec string, in the manner of testinfra's backends.

`local` or `local:STATE_DIR` is the embedded stack; `docker:PROJECT` (alias
`compose:PROJECT`) is a Compose project's containers; a path ending in .toml/.yaml/.yml is a
target file describing another deployment (see `opsdrill.targets.remote`).

Backends are imported lazily, so a check run against one target never imports another's
dependencies; an unknown scheme is one clear error.
"""

from __future__ import annotations

from pathlib import Path

from opsdrill.errors import UsageError
from opsdrill.targets.base import Endpoints, Service, Target

__all__ = ["DEFAULT_STATE_DIR", "Endpoints", "Service", "Target", "parse_spec"]

DEFAULT_STATE_DIR = Path(".opsdrill")
SCHEMES = ("local", "local:STATE_DIR", "docker:PROJECT", "a target file (.toml, .yaml)")
TARGET_FILE_SUFFIXES = (".toml", ".yaml", ".yml")


def parse_spec(spec: str) -> Target:
    """Build a target from `local`, `local:STATE_DIR` or a target file path."""
    if spec.endswith(TARGET_FILE_SUFFIXES):
        from opsdrill.targets.remote import load_target_file

        return load_target_file(Path(spec))
    scheme, _, rest = spec.partition(":")
    if scheme == "local":
        from opsdrill.targets.local import LocalTarget

        return LocalTarget(Path(rest) if rest else DEFAULT_STATE_DIR)
    if scheme in ("docker", "compose"):
        from opsdrill.targets.docker import DockerTarget, parse_docker_spec

        project, secret_env = parse_docker_spec(rest)
        return DockerTarget(project, secret_env)
    raise UsageError(
        f"unknown target {spec!r}: use one of {', '.join(SCHEMES)} "
        "(e.g. 'local' or 'local:/var/tmp/stack')"
    )
