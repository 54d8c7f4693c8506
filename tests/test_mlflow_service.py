"""The MLflow service of the embedded stack: on when installed, off by option, and its secret
(the backend store's password) kept off the command line."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsdrill.targets import mlflow_service
from opsdrill.targets.local import LocalTarget

needs_mlflow = pytest.mark.skipif(not mlflow_service.installed(), reason="mlflow not installed")


@needs_mlflow
def test_on_by_default_with_url_and_tracking_env(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("OPSDRILL_MLFLOW", raising=False)
    target = LocalTarget(tmp_path / "state", monitoring=False)
    assert "mlflow" in target.services
    assert target.endpoints.mlflow_url == target.services["mlflow"].url
    assert target.app_env()["MLFLOW_TRACKING_URI"] == target.endpoints.mlflow_url


@needs_mlflow
def test_password_only_in_the_environment(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("OPSDRILL_MLFLOW", raising=False)
    target = LocalTarget(tmp_path / "state", monitoring=False)
    spec = mlflow_service.spec(target)
    password = target.secrets.db_password
    assert password not in " ".join(spec.argv)
    assert password in (spec.env or {})["MLFLOW_BACKEND_STORE_URI"]
    assert spec.env["MLFLOW_BACKEND_STORE_URI"].endswith("/mlflow")  # its own database


def test_off_by_environment(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("OPSDRILL_MLFLOW", "0")
    target = LocalTarget(tmp_path / "state", monitoring=False)
    assert "mlflow" not in target.services
    assert target.endpoints.mlflow_url is None
    assert "MLFLOW_TRACKING_URI" not in target.app_env()
