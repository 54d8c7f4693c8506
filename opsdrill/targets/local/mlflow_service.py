"""The MLflow tracking server of the embedded stack (runbook §2.1: experiment tracking).

Its backend store is a database of its own (`mlflow`) in the stack's PostgreSQL, created
before it starts; its artifacts go under the model storage (`models/mlflow-artifacts`), served
through the server so a trainer needs only its URL. On by default where the `mlflow` package
is installed (`pip install -e .[mlflow]`); off with `OPSDRILL_MLFLOW=0` or
`opsdrill up --no-mlflow` (kept in the stack's options.json). The backend URI travels in the
environment, never on the command line (where `ps` would show its password).

`mlflow server` is a small supervisor whose child (uvicorn, one worker) serves: SIGTERM to the
supervisor is forwarded, but a SIGKILL would leave the child serving, so `MlflowService.kill`
signals the serving child (the server proper crashing; the supervisor then exits by itself).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import sys
from pathlib import Path

import psutil
import psycopg

from opsdrill.errors import ServiceError
from opsdrill.probes.http import http_ok
from opsdrill.processes import ProcessRef
from opsdrill.targets.local.process_service import ProcessService, ProcessSpec

__all__ = [
    "DATABASE",
    "ENV",
    "MlflowService",
    "backend_uri",
    "installed",
    "serving_pid",
    "spec",
]

DATABASE = "mlflow"
ENV = "OPSDRILL_MLFLOW"


def installed() -> bool:
    """True when the `mlflow` package (the server) is importable here."""
    return importlib.util.find_spec("mlflow") is not None


def backend_uri(app_dsn: str) -> str:
    """SQLAlchemy URI of MLflow's own database (psycopg 3 driver), with the app's role."""
    server = app_dsn.rsplit("/", 1)[0]
    return server.replace("postgresql://", "postgresql+psycopg://", 1) + f"/{DATABASE}"


def create_database(admin_conninfo: str, owner: str) -> None:
    """CREATE DATABASE mlflow (owned by the app's role) unless it exists."""
    with (
        psycopg.connect(admin_conninfo, autocommit=True) as conn,
        contextlib.suppress(psycopg.errors.DuplicateDatabase),
    ):
        conn.execute(f"CREATE DATABASE {DATABASE} OWNER {owner}")  # type: ignore[arg-type]


def spec(port: int, home: Path, app_dsn: str, admin_conninfo: str, owner: str) -> ProcessSpec:
    """`mlflow server` on loopback `port`, artifacts under `home`/models, its database made
    first (over `admin_conninfo`, a superuser's connection to any database)."""
    url = f"http://127.0.0.1:{port}"
    artifacts = home / "models" / "mlflow-artifacts"
    env = dict(
        os.environ,
        MLFLOW_BACKEND_STORE_URI=backend_uri(app_dsn),
        MLFLOW_ARTIFACTS_DESTINATION=artifacts.as_uri(),
        # no GenAI job runner (huey consumers): memory this 2-core stack does not spare
        MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false",
    )

    def before_start() -> None:
        artifacts.mkdir(parents=True, exist_ok=True)
        create_database(admin_conninfo, owner)

    return ProcessSpec(
        argv=[sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1",
              "--port", str(port), "--workers", "1", "--serve-artifacts"],
        env=env,
        cwd=home,
        ready=lambda: http_ok(f"{url}/health"),
        url=url,
        port=port,
        before_start=before_start,
    )  # fmt: skip


def serving_pid(supervisor_pid: int) -> int | None:
    """The uvicorn child of `mlflow server` that listens (the supervisor itself serves nothing)."""
    with contextlib.suppress(psutil.Error):
        for child in psutil.Process(supervisor_pid).children():
            if "uvicorn" in " ".join(child.cmdline()):
                return child.pid
    return None


class MlflowService(ProcessService):
    """The server as one service: `pid()` is the supervisor, `kill` reaches what serves, and
    `stop` never leaves the serving child behind."""

    def _serving(self) -> ProcessRef | None:
        supervisor = self.pid()
        child = serving_pid(supervisor) if supervisor is not None else None
        return ProcessRef.of(child) if child is not None else None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        serving = self._serving()
        if serving is None:
            super().kill(sig)  # still starting: no child yet, the supervisor is the server
        elif not serving.signal(sig):
            raise ServiceError(f"cannot signal mlflow's serving process {serving.pid}: gone")

    def stop(self, timeout: float = 30.0) -> None:
        serving = self._serving()
        super().stop(timeout)
        if serving is not None:  # a supervisor SIGKILLed after `timeout` forwards nothing
            serving.terminate(grace=5.0)
