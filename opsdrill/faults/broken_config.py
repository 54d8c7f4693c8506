"""A config file that does not parse, then a restart: runbook §5.2.1 ("correct the config").

The original `conf/config.yaml` (or its absence) is saved in the journal entry before the file
is touched, through the target's file operations (`Target.files`); the app is restarted and
refuses to start, its `--check-config` naming the problem. Revert puts the original back and
starts the app.
"""

from __future__ import annotations

import base64
from pathlib import PurePosixPath

from opsdrill.errors import FaultNotEffective
from opsdrill.faults.base import CONTROL, Fault, register
from opsdrill.targets.base import Target
from opsdrill.targets.model import ExecResult

__all__ = ["BROKEN_YAML", "BrokenConfig", "check_config", "config_path"]

#: an unclosed flow sequence: the YAML parser rejects it and names the line
BROKEN_YAML = "pool:\n  size: [4, 8\nlog_level: INFO\n"
SERVICE = "api"


def config_path(target: Target) -> PurePosixPath:
    """The app's config file, where the app runs: NF_HOME/conf/config.yaml."""
    home = target.endpoints.home
    if home is None:
        raise FaultNotEffective(f"target {target.name!r} names no data directory (NF_HOME)")
    return PurePosixPath(home) / "conf" / "config.yaml"


def check_config(target: Target) -> ExecResult:
    """Run the app's own `--check-config` where the app runs, with its environment."""
    return target.app_main("--check-config", timeout=60)


@register
class BrokenConfig(Fault):
    """The app's config file is replaced by one that does not parse; the app is restarted."""

    kind = "broken_config"

    needs = CONTROL | {"service_files"}
    blast_radius = "the whole API: it is restarted and refuses to start on the broken file"
    undo_summary = "restore the original config file from the journal, then start the app"

    def __init__(self, target: Target, *, content: str = BROKEN_YAML) -> None:
        super().__init__(target, content=content)
        self.start_error: str | None = None

    def describe(self) -> str:
        """One line, whatever the content (it goes into tables and timelines)."""
        return f"{self.kind}(conf/config.yaml, content={self.params['content']!r})"

    @property
    def path(self) -> PurePosixPath:
        return config_path(self.target)

    def _inject(self) -> None:
        path, files = self.path, self.target.files(SERVICE)
        original = files.read_text(path) if files.exists(path) else None
        encoded = base64.b64encode(original.encode()).decode() if original is not None else None
        self.save_undo(path=str(path), original_b64=encoded)
        files.write_text(path, self.params["content"])
        api = self.target.service(SERVICE)
        api.stop()
        self.start_error = self.require_refused_start(SERVICE, f"{path} does not parse")

    def _revert(self) -> None:
        undo = self.entry.undo
        if "original_b64" in undo:
            files = self.target.files(SERVICE)
            if undo["original_b64"] is None:
                files.remove(undo["path"])
            else:
                original = base64.b64decode(undo["original_b64"]).decode()
                files.write_text(undo["path"], original, mode=undo.get("mode") or 0o644)
        api = self.target.service(SERVICE)
        if not api.is_running():
            api.start(timeout=120)
