"""The MLflow tracking server killed (SIGKILL, by pid) while training runs go on.

The target's `mlflow` service takes the signal where the server really serves (the embedded
stack: the uvicorn child of `mlflow server`, whose supervisor then exits). Training must not
notice beyond its tracking: runs complete, their MLflow logging waits to be caught up.
"""

from __future__ import annotations

from opsdrill.faults.base import CONTROL, register
from opsdrill.faults.service_kill import ServiceKill

__all__ = ["MlflowDown"]


@register
class MlflowDown(ServiceKill):
    """MLflow's server killed (or stopped): tracking calls fail until it is started again."""

    kind = "mlflow_down"

    needs = CONTROL  # the tracking server's serving process killed by pid
    service = "mlflow"
    blast_radius = "experiment tracking only: completed runs wait to be logged to MLflow"
    undo_summary = "start the MLflow server again; pending runs are then caught up"
