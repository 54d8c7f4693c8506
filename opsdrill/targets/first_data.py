"""What a new stack needs before forecasts work: series data, one trained model, a backup.

Target-neutral: the data and the backup come from the stack's own ops CLI (`Target.ops`),
the model from the API. Training goes through the API and the executor, the same path every
later run takes, so a stack that comes up has already proven its training path once.
"""

from __future__ import annotations

from typing import Any

from opsdrill.errors import ServiceError, StartTimeout, TargetUnreachable
from opsdrill.stack.api import FINISHED, ApiClient
from opsdrill.targets.base import Target

__all__ = ["FIRST_MODEL", "backup", "ops", "seed", "train_first_model", "wait_for_run"]

FIRST_MODEL = {"series_id": "airpassengers", "model_name": "MLP", "horizon": 12,
               "run_name": "opsdrill-first-model"}  # fmt: skip


def ops(target: Target, command: str, what: str) -> str:
    """Run one of the stack's own ops commands; its last output line, or a clear error."""
    done = target.ops(command)
    if not done.ok:
        raise ServiceError(f"{what} failed: {done.output(400)}")
    lines = done.stdout.strip().splitlines()
    return lines[-1] if lines else "done"


def seed(target: Target) -> None:
    """Load the series data (the ops command is idempotent)."""
    ops(target, "seed", "seeding the database")


def backup(target: Target) -> str:
    """Take the stack's first backup, so the daily check's "backup < 24 h" holds from the start."""
    return ops(target, "backup", "the first backup")


def train_first_model(target: Target, timeout: float = 300.0) -> dict[str, Any]:
    """Schedule one training run through the API and wait until it completes."""
    ep = target.endpoints
    try:
        run_id = ApiClient(ep.api_url, ep.api_key).submit_run(FIRST_MODEL)
    except TargetUnreachable as exc:
        raise ServiceError(f"scheduling the first training run failed: {exc}") from exc
    run = wait_for_run(ep.api_url, run_id, timeout)
    if run["status"] != "completed":
        raise ServiceError(
            f"the first training run ended {run['status']}: {run.get('error_message')}"
        )
    return run


def wait_for_run(api_url: str, run_id: int, timeout: float) -> dict[str, Any]:
    """The run once it has finished; StartTimeout after `timeout` seconds."""
    run = ApiClient(api_url).wait_run(run_id, timeout)
    if run["status"] not in FINISHED:
        raise StartTimeout(f"run {run_id} still {run['status']} after {timeout:.0f} s")
    return run
