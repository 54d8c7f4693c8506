"""The state directory: what the embedded stack is, where it lives and which pids are ours.

One JSON file (`state.json`) written atomically, so a run killed half-way never leaves a torn
file; secrets live beside it in `secrets.json`, mode 0600, and never in output.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Secrets", "ServiceRecord", "StackState", "journal_home", "write_json_atomic"]

STATE_FILE = "state.json"
SECRETS_FILE = "secrets.json"


def write_json_atomic(path: Path, data: Any, mode: int = 0o644) -> None:
    """Write JSON through a temporary file and rename, so readers see old or new, never half."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=2, sort_keys=True)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


@dataclass
class ServiceRecord:
    """A started service: enough to find it again from another process."""

    pid: int = 0
    ticks: int = 0
    port: int = 0
    started_at: float = 0.0


@dataclass
class StackState:
    """Ports are chosen once and kept, so URLs stay stable across `up`/`down` cycles."""

    ports: dict[str, int] = field(default_factory=dict)
    services: dict[str, ServiceRecord] = field(default_factory=dict)
    initialized: bool = False  # database created, seeded and a first model trained

    @classmethod
    def load(cls, state_dir: Path) -> StackState:
        path = state_dir / STATE_FILE
        if not path.exists():
            return cls()
        raw = json.loads(path.read_text())
        return cls(
            ports={k: int(v) for k, v in raw.get("ports", {}).items()},
            services={k: ServiceRecord(**v) for k, v in raw.get("services", {}).items()},
            initialized=bool(raw.get("initialized", False)),
        )

    def save(self, state_dir: Path) -> None:
        state_dir.mkdir(parents=True, exist_ok=True)
        data = {
            "ports": self.ports,
            "services": {k: asdict(v) for k, v in self.services.items()},
            "initialized": self.initialized,
        }
        write_json_atomic(state_dir / STATE_FILE, data)


@dataclass(frozen=True)
class Secrets:
    """Generated once per state directory; shown to nobody."""

    db_password: str
    api_key: str

    @classmethod
    def load_or_create(cls, state_dir: Path) -> Secrets:
        path = state_dir / SECRETS_FILE
        if path.exists():
            return cls(**json.loads(path.read_text()))
        made = cls(db_password=secrets.token_urlsafe(18), api_key=secrets.token_urlsafe(24))
        state_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, asdict(made), mode=0o600)
        return made

    def __repr__(self) -> str:
        return "Secrets(<redacted>)"


def journal_home(kind: str, name: str) -> Path:
    """The default `journal_dir` for a target opsdrill does not run itself: under
    $OPSDRILL_STATE_HOME (default ~/.local/state/opsdrill), one directory per target."""
    root = Path(
        os.environ.get("OPSDRILL_STATE_HOME")
        or Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "opsdrill"
    )
    return root / "targets" / kind / re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_")
