"""The stack's opt-ins: chosen at `up`, saved in options.json, read back by every later target.

Each is resolved alike: asked (the CLI, a test) > its environment variable, where it has one >
what the stack was started with > the default. Saved, they let `opsdrill rollback` and the
plugin, which pass none, see the same stack as the `up` that made it.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from opsdrill.state import write_json_atomic
from opsdrill.targets.local import mlflow_service, redis_service
from opsdrill.targets.local.data_fs import parse_size
from opsdrill.targets.local.worker_cgroup import WorkerCgroup

__all__ = ["OPTIONS_FILE", "StackOptions", "flag", "resolve"]

OPTIONS_FILE = "options.json"


@dataclass
class StackOptions:
    """The stack's opt-ins, fixed at `up` and read back by every later LocalTarget."""

    data_fs_size: str | None = None  # e.g. "64m": NF_HOME on a loop-mounted ext4 image
    proxy: bool = False  # Toxiproxy between app and PostgreSQL, and in front of the API
    worker_cgroup: str | None = None  # memory cgroup directory the training workers join
    monitoring: bool = True  # Prometheus & co. where installed (off: alert detectors skip)
    redis: bool = True  # Redis as the forecast cache where installed (redis_service)
    mlflow: bool = True  # the MLflow tracking server where installed (mlflow_service)

    @classmethod
    def load(cls, state_dir: Path) -> StackOptions | None:
        path = state_dir / OPTIONS_FILE
        if not path.exists():
            return None
        return cls(**json.loads(path.read_text()))

    def save(self, state_dir: Path) -> None:
        state_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(state_dir / OPTIONS_FILE, asdict(self))


def resolve(
    state_dir: Path,
    *,
    data_fs_size: str | None,
    proxy: bool | None,
    worker_cgroup: bool | None,
    monitoring: bool | None,
    redis: bool | None,
    mlflow: bool | None,
) -> StackOptions:
    """The options of the stack in `state_dir`; those left None as the stack has them."""
    saved = StackOptions.load(state_dir)
    if data_fs_size is None:
        data_fs_size = os.environ.get("OPSDRILL_DATA_FS_SIZE") or None
    if data_fs_size is None and saved is not None:
        data_fs_size = saved.data_fs_size
    if data_fs_size is not None:
        parse_size(data_fs_size)
    if saved is not None and worker_cgroup is None:
        cgroup = saved.worker_cgroup
    elif worker_cgroup is False:
        cgroup = None
    else:
        found = WorkerCgroup.for_state_dir(state_dir)
        cgroup = str(found.path) if found is not None else None
    return StackOptions(
        data_fs_size=data_fs_size,
        proxy=flag(proxy, "OPSDRILL_PROXY", saved.proxy if saved else None, default=False),
        worker_cgroup=cgroup,
        monitoring=flag(
            monitoring, "OPSDRILL_MONITORING", saved.monitoring if saved else None, default=True
        ),
        redis=flag(redis, redis_service.ENV, saved.redis if saved else None, default=True),
        mlflow=flag(mlflow, mlflow_service.ENV, saved.mlflow if saved else None, default=True),
    )


def flag(asked: bool | None, env: str, saved: bool | None, *, default: bool) -> bool:
    """Asked > $env (0, false or no: off; anything else: on) > saved > default."""
    if asked is not None:
        return asked
    if os.environ.get(env):
        return os.environ[env] not in ("0", "false", "no")
    return default if saved is None else saved
