"""The MLflow drill fails when its procedure does nothing, and the fault's own revert still
brings MLflow back, after which the run it missed is caught up: nothing is lost even then.

Runs `chaos/test_mlflow_down.py`'s spec on the session's stack with `restart_mlflow` made a
no-op: the steady state (MLflow /health 200) is not restored by it, so the drill must end
with "recovery incomplete"; the harness's revert (MlflowDown starts the server again) must.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from chaos.test_mlflow_down import _row, _start_training, mlflow_down_spec
from opsdrill.drill import RECOVERY_INCOMPLETE, Detector, run_drill
from opsdrill.drill.standard import StandardDrill
from opsdrill.faults.journal import Journal
from opsdrill.targets.local import mlflow_service

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not mlflow_service.installed(), reason="the mlflow package is not installed"
    ),
]


def test_mlflow_drill_fails_when_its_procedure_is_a_no_op(stack: Any, tmp_path: Path) -> None:
    assert "mlflow" in stack.services, "the stack did not start MLflow although installed"
    run_id = _start_training(stack)
    spec = mlflow_down_spec(StandardDrill(stack, "5.3.1"), run_id)
    assert spec.recover is not None
    spec.recover = spec.recover.without_effect()
    spec.recovery_timeout = 8
    result = run_drill(spec, tmp_path)
    assert not result.passed
    assert RECOVERY_INCOMPLETE in result.errors, result.errors
    assert result.mttr is None and result.timeline.first("steady_after_revert") is not None
    assert Journal(stack.state_dir).entries() == []
    assert stack.service("mlflow").healthy(), "the revert did not start MLflow again"
    tracked = Detector(
        "the missed run is caught up",
        lambda: _row(stack.admin_dsn, run_id).get("tracking_status") == "tracked",
    )
    assert tracked.wait(timeout=120) is not None, _row(stack.admin_dsn, run_id)
