"""Targets by spec string, in the manner of testinfra's backends.

`local` or `local:STATE_DIR` is the embedded stack; `docker:PROJECT` (alias
`compose:PROJECT`) is a Compose project's containers; a path ending in .toml/.yaml/.yml is a
target file describing another deployment (see `opsdrill.targets.file.target`).

Backends are imported lazily, so a check run against one target never imports another's
dependencies; an unknown scheme is one clear error.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from opsdrill.errors import UsageError
from opsdrill.targets.base import Service, Target
from opsdrill.targets.model import Endpoints

__all__ = [
    "DEFAULT_SPEC",
    "DEFAULT_STATE_DIR",
    "Endpoints",
    "Service",
    "Target",
    "gameday_stack",
    "parse_spec",
]

DEFAULT_STATE_DIR = Path(".opsdrill")
DEFAULT_SPEC = f"local:{DEFAULT_STATE_DIR}"
#: the game day gives a new embedded stack a data filesystem this big (as root), so the
#: disk-full drill is real
GAMEDAY_DATA_FS = "256m"
SCHEMES = ("local", "local:STATE_DIR", "docker:PROJECT", "a target file (.toml, .yaml)")
TARGET_FILE_SUFFIXES = (".toml", ".yaml", ".yml")


def parse_spec(spec: str, **options: object) -> Target:
    """Build a target from `local`, `local:STATE_DIR`, `docker:PROJECT` or a target file path.

    `options` are the opt-ins of a stack opsdrill runs itself (`monitoring`, `data_fs_size`,
    `proxy`, as `opsdrill up` takes them); None means "as the stack has them". A target
    deployed elsewhere takes none: one given is refused with a sentence naming it.
    """
    given = sorted(k for k, v in options.items() if v is not None)
    if spec.endswith(TARGET_FILE_SUFFIXES):
        _no_options(spec, given)
        return _from_file(Path(spec))
    scheme, _, rest = spec.partition(":")
    if scheme == "local":
        from opsdrill.targets.local import LocalTarget

        return LocalTarget(Path(rest) if rest else DEFAULT_STATE_DIR, **options)  # type: ignore[arg-type]
    if scheme in ("docker", "compose"):
        from opsdrill.targets.docker.spec import parse_docker_spec
        from opsdrill.targets.docker.target import DockerTarget

        _no_options(spec, given)
        project, secret_env = parse_docker_spec(rest)
        return DockerTarget(project, secret_env)
    raise UsageError(
        f"unknown target {spec!r}: use one of {', '.join(SCHEMES)} "
        "(e.g. 'local' or 'local:/var/tmp/stack')"
    )


def _from_file(path: Path) -> Target:
    """A host over ssh when the file's `host` is ssh://, else any testinfra host."""
    from opsdrill.targets.file.target import FileTarget, read_target_file

    raw = read_target_file(path)
    if str(raw.get("host", "")).startswith("ssh://"):
        from opsdrill.targets.host.target import HostTarget

        return HostTarget(path, raw)
    return FileTarget(path, raw)


def _no_options(spec: str, given: list[str]) -> None:
    if given:
        raise UsageError(
            f"target {spec!r} is deployed elsewhere: {', '.join(given)} only apply to a stack "
            "opsdrill runs itself (local:DIR)"
        )


def gameday_stack(
    spec: str, *, fresh: bool, monitoring: bool, data_fs_size: str | None, proxy: bool,
    say: Callable[[str], None] = print,
) -> Target:  # fmt: skip
    """The target a game day runs on: a running stack, or one deployed elsewhere, as it is;
    else a new embedded stack with everything the drills need to run for real (a data
    filesystem where this machine can give one, the proxy) — a stopped one's data removed
    first unless not `fresh`, so an earlier game day's drills do not fail today's checks."""
    existing = parse_spec(spec)
    if existing.state_home() is None or any(s.is_running() for s in existing.services.values()):
        return existing
    if fresh and existing.exists():
        say(f"opsdrill gameday: starting fresh; removing the stopped stack in "
            f"{existing.state_home()}")  # fmt: skip
        existing.destroy()
    from opsdrill.targets.local import DataFilesystem

    if data_fs_size is None and DataFilesystem.supported() is None:
        data_fs_size = GAMEDAY_DATA_FS
    return parse_spec(spec, monitoring=monitoring, data_fs_size=data_fs_size, proxy=proxy)
