"""The MLflow tracking server killed (SIGKILL, by pid) while training runs go on.

`mlflow server` supervises one uvicorn process that serves; the fault kills that one by pid
(a crash of the server proper), and the supervisor exits with it, as it does on its own.
Training must not notice beyond its tracking: runs complete, their MLflow logging waits.
"""

from __future__ import annotations

import signal

from opsdrill.errors import FaultNotEffective
from opsdrill.faults.base import Fault, register
from opsdrill.processes import ProcessRef
from opsdrill.targets.mlflow_service import serving_pid

__all__ = ["MlflowDown"]


@register
class MlflowDown(Fault):
    """MLflow's serving process SIGKILLed: tracking calls fail until it is started again."""

    kind = "mlflow_down"
    blast_radius = "experiment tracking only: completed runs wait to be logged to MLflow"
    undo_summary = "start the MLflow server again; pending runs are then caught up"

    def _inject(self) -> None:
        svc = self.target.service("mlflow")
        supervisor = svc.pid()
        serving = serving_pid(supervisor) if supervisor is not None else None
        if supervisor is None or serving is None:
            raise FaultNotEffective(
                "MLflow is not running (no serving process), so it cannot be killed"
            )
        self.save_undo(supervisor=supervisor, serving=serving)
        ref = ProcessRef.of(serving)
        if ref is None or not ref.signal(signal.SIGKILL):
            raise FaultNotEffective(f"MLflow's serving process {serving} was gone before the kill")

    def _revert(self) -> None:
        svc = self.target.service("mlflow")
        if not svc.is_running():
            svc.start(timeout=120)
