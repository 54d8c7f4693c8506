"""The MLflow tracking server of the embedded stack (runbook §2.1: experiment tracking).

Its backend store is a database of its own (`mlflow`) in the stack's PostgreSQL, created
before it starts; its artifacts go under the model storage (`models/mlflow-artifacts`), served
through the server so a trainer needs only its URL. On by default when the `mlflow` package
is installed (`pip install -e .[mlflow]`); `OPSDRILL_MLFLOW=0` or `opsdrill up --no-mlflow`
leaves it out. The backend URI travels in the environment, never on the command line (where
`ps` would show its password).

`mlflow server` is a small supervisor whose child (uvicorn, one worker) serves: SIGTERM to the
supervisor is forwarded; the pid that serves is `serving_pid`.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
from typing import TYPE_CHECKING

from opsdrill.probes.http import http_ok
from opsdrill.targets.process_service import ProcessSpec

if TYPE_CHECKING:
    from opsdrill.targets.local import LocalTarget

__all__ = ["DATABASE", "installed", "serving_pid", "spec", "wanted"]

DATABASE = "mlflow"
ENV_SWITCH = "OPSDRILL_MLFLOW"


def installed() -> bool:
    """True when the `mlflow` package (the server) is importable here."""
    return importlib.util.find_spec("mlflow") is not None


def wanted(saved: bool | None) -> bool:
    """The option: the environment's OPSDRILL_MLFLOW, else what the stack saved, else on."""
    if os.environ.get(ENV_SWITCH):
        return os.environ[ENV_SWITCH] not in ("0", "false", "no")
    return True if saved is None else saved


def _create_database(target: LocalTarget) -> None:
    import psycopg

    from opsdrill.targets.postgres import APP_ROLE

    conninfo = target.cluster.admin_conninfo("postgres")
    with (
        psycopg.connect(conninfo, autocommit=True) as conn,
        contextlib.suppress(psycopg.errors.DuplicateDatabase),
    ):
        conn.execute(f"CREATE DATABASE {DATABASE} OWNER {APP_ROLE}")  # type: ignore[arg-type]


def backend_uri(target: LocalTarget) -> str:
    """SQLAlchemy URI of MLflow's own database (psycopg 3 driver), with the app's role."""
    dsn = target.endpoints.dsn.rsplit("/", 1)[0]
    return dsn.replace("postgresql://", "postgresql+psycopg://", 1) + f"/{DATABASE}"


def spec(target: LocalTarget) -> ProcessSpec:
    port = target._port("mlflow")
    url = f"http://127.0.0.1:{port}"
    artifacts = target.home / "models" / "mlflow-artifacts"
    env = dict(
        os.environ,
        MLFLOW_BACKEND_STORE_URI=backend_uri(target),
        MLFLOW_ARTIFACTS_DESTINATION=artifacts.as_uri(),
        # no GenAI job runner (huey consumers): memory this 2-core stack does not spare
        MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false",
    )

    def before_start() -> None:
        artifacts.mkdir(parents=True, exist_ok=True)
        _create_database(target)

    return ProcessSpec(
        argv=[sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1",
              "--port", str(port), "--workers", "1", "--serve-artifacts"],
        env=env,
        cwd=target.home,
        ready=lambda: http_ok(f"{url}/health"),
        url=url,
        port=port,
        before_start=before_start,
    )  # fmt: skip


def serving_pid(supervisor_pid: int) -> int | None:
    """The uvicorn child of `mlflow server` that listens (the supervisor itself serves nothing)."""
    import psutil

    with contextlib.suppress(psutil.Error):
        for child in psutil.Process(supervisor_pid).children():
            if "uvicorn" in " ".join(child.cmdline()):
                return child.pid
    return None
