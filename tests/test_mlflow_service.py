"""The MLflow service of the embedded stack: on when installed, off by option, its secret (the
backend store's password) kept off the command line, and its kill and stop reaching the child
that serves (a supervisor and its child stand in for `mlflow server` and uvicorn)."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import pytest

from opsdrill.polling import wait_for
from opsdrill.processes import ProcessRef
from opsdrill.state import ServiceRecord
from opsdrill.targets.local import LocalTarget, mlflow_service, options
from opsdrill.targets.local.process_service import ProcessSpec

needs_mlflow = pytest.mark.skipif(not mlflow_service.installed(), reason="mlflow not installed")


@needs_mlflow
def test_on_by_default_with_url_and_tracking_env(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv(mlflow_service.ENV, raising=False)
    target = LocalTarget(tmp_path / "state", monitoring=False)
    assert "mlflow" in target.services
    assert isinstance(target.services["mlflow"], mlflow_service.MlflowService)
    assert target.endpoints.mlflow_url == target.services["mlflow"].url
    assert target.app_env()["MLFLOW_TRACKING_URI"] == target.endpoints.mlflow_url


def test_password_only_in_the_environment(tmp_path: Path) -> None:
    dsn = "postgresql://nf_app:s3cret@127.0.0.1:5433/ts_forecast_system"
    spec = mlflow_service.spec(5000, tmp_path, dsn, "host=/tmp dbname=postgres", "nf_app")
    assert "s3cret" not in " ".join(spec.argv)
    uri = (spec.env or {})["MLFLOW_BACKEND_STORE_URI"]
    assert uri == "postgresql+psycopg://nf_app:s3cret@127.0.0.1:5433/mlflow"  # its own database
    assert spec.url == "http://127.0.0.1:5000"
    assert (spec.env or {})["MLFLOW_ARTIFACTS_DESTINATION"].startswith(tmp_path.as_uri())


def test_off_by_environment(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(mlflow_service.ENV, "0")
    target = LocalTarget(tmp_path / "state", monitoring=False)
    assert "mlflow" not in target.services
    assert target.endpoints.mlflow_url is None
    assert "MLFLOW_TRACKING_URI" not in target.app_env()


def test_off_by_the_cli_is_saved_for_later_targets(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv(mlflow_service.ENV, raising=False)
    first = LocalTarget(tmp_path / "state", monitoring=False, mlflow=False)
    first.options.save(first.state_dir)
    assert "mlflow" not in LocalTarget(tmp_path / "state").services


@pytest.mark.parametrize(
    ("asked", "env", "saved", "expected"),
    [(False, "1", True, False), (None, "0", True, False), (None, "", False, False),
     (None, "", None, True), (True, "no", False, True)],
)  # fmt: skip
def test_option_precedence(monkeypatch, asked, env, saved, expected) -> None:
    monkeypatch.setenv(mlflow_service.ENV, env)
    assert options.flag(asked, mlflow_service.ENV, saved, default=True) is expected


# -- the process tree: a supervisor whose child's command line names uvicorn ----------------

#: a supervisor that ignores SIGTERM (so stop must SIGKILL it) and keeps one "uvicorn" child
SUPERVISOR = (
    "import signal, subprocess, sys, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)', 'uvicorn'])\n"
    "time.sleep(300)\n"
)


class _Records:
    def __init__(self) -> None:
        self.records: dict[str, ServiceRecord | None] = {}

    def get_record(self, name: str) -> ServiceRecord | None:
        return self.records.get(name)

    def put_record(self, name: str, record: ServiceRecord | None) -> None:
        self.records[name] = record


@pytest.fixture
def server(tmp_path: Path):
    spec = ProcessSpec(argv=[sys.executable, "-c", SUPERVISOR], ready=lambda: True)
    svc = mlflow_service.MlflowService("mlflow", _Records(), lambda: spec, tmp_path / "m.log")
    svc.start(timeout=10)
    supervisor = svc.pid()
    assert supervisor is not None
    child = wait_for("its child", lambda: mlflow_service.serving_pid(supervisor), 10)
    yield svc, ProcessRef.of(supervisor), ProcessRef.of(child)
    for ref in (ProcessRef.of(child), ProcessRef.of(supervisor)):
        if ref is not None:
            ref.signal(signal.SIGKILL)


def test_kill_reaches_the_serving_child(server) -> None:
    svc, supervisor, child = server
    svc.kill(signal.SIGKILL)
    assert child.wait_gone(5.0), "the serving child survived the kill"
    assert supervisor.alive(), "the kill went to the supervisor, not to what serves"


def test_stop_leaves_no_serving_child_behind(server) -> None:
    svc, supervisor, child = server
    svc.stop(timeout=1.0)  # SIGTERM ignored: the supervisor is SIGKILLed, forwarding nothing
    assert not supervisor.alive()
    assert not child.alive(), f"stop left the serving child {child.pid} running"
    assert svc.pid() is None
