"""A config file that does not parse, then a restart: runbook §5.2.1 ("correct the config").

The original `conf/config.yaml` (or its absence) is saved in the journal entry before the file
is touched; the app is restarted and refuses to start, its `--check-config` naming the problem.
Revert puts the original back byte for byte and starts the app.
"""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path

from opsdrill.faults.base import Fault, register
from opsdrill.targets.local import LocalTarget

__all__ = ["BROKEN_YAML", "BrokenConfig", "check_config"]

#: an unclosed flow sequence: the YAML parser rejects it and names the line
BROKEN_YAML = "pool:\n  size: [4, 8\nlog_level: INFO\n"


def check_config(target: LocalTarget) -> subprocess.CompletedProcess[str]:
    """Run the app's own `--check-config` with the app's environment."""
    return subprocess.run(
        [sys.executable, "-m", "nf_auto_runner.app.main", "--check-config"],
        env=target.app_env(),
        cwd=target.home,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@register
class BrokenConfig(Fault):
    """The app's config file is replaced by one that does not parse; the app is restarted."""

    kind = "broken_config"
    blast_radius = "the whole API: it is restarted and refuses to start on the broken file"
    undo_summary = "restore the original config file from the journal, then start the app"

    def __init__(self, target: LocalTarget, *, content: str = BROKEN_YAML) -> None:
        super().__init__(target, content=content)
        self.start_error: str | None = None

    def describe(self) -> str:
        """One line, whatever the content (it goes into tables and timelines)."""
        return f"{self.kind}(conf/config.yaml, content={self.params['content']!r})"

    @property
    def path(self) -> Path:
        return self.target.home / "conf" / "config.yaml"

    def _inject(self) -> None:
        path = self.path
        original = base64.b64encode(path.read_bytes()).decode() if path.exists() else None
        mode = path.stat().st_mode & 0o7777 if path.exists() else None
        self.save_undo(path=str(path), original_b64=original, mode=mode)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".opsdrill-tmp")
        tmp.write_text(self.params["content"])
        tmp.replace(path)
        api = self.target.service("api")
        api.stop()
        self.start_error = self.require_refused_start("api", f"{path} does not parse")

    def _revert(self) -> None:
        undo = self.entry.undo
        if "original_b64" in undo:
            path = Path(undo["path"])
            if undo["original_b64"] is None:
                path.unlink(missing_ok=True)
            else:
                path.write_bytes(base64.b64decode(undo["original_b64"]))
                path.chmod(undo.get("mode") or 0o644)
        api = self.target.service("api")
        if not api.is_running():
            api.start(timeout=120)
