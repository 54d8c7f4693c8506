"""What a new stack needs before forecasts work: series data, one trained model, a backup.

Target-neutral: the data and the backup come from the stack's own ops CLI (`Target.ops`),
the model from the API. Training goes through the API and the executor, the same path every
later run takes, so a stack that comes up has already proven its training path once.
"""

from __future__ import annotations

import contextlib
from typing import Any

import httpx

from opsdrill.errors import ServiceError, StartTimeout
from opsdrill.polling import poll
from opsdrill.targets.base import Target

__all__ = ["FIRST_MODEL", "backup", "ops", "seed", "train_first_model", "wait_for_run"]

FIRST_MODEL = {"series_id": "airpassengers", "model_name": "MLP", "horizon": 12,
               "run_name": "opsdrill-first-model"}  # fmt: skip
FINISHED = ("completed", "failed", "cancelled")


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
    resp = httpx.post(
        f"{ep.api_url}/runs", json=FIRST_MODEL, headers={"X-API-Key": ep.api_key or ""}, timeout=10
    )
    if resp.status_code != 201:
        raise ServiceError(
            f"scheduling the first training run failed: {resp.status_code} {resp.text}"
        )
    run = wait_for_run(ep.api_url, resp.json()["run_id"], timeout)
    if run["status"] != "completed":
        raise ServiceError(
            f"the first training run ended {run['status']}: {run.get('error_message')}"
        )
    return run


def wait_for_run(api_url: str, run_id: int, timeout: float) -> dict[str, Any]:
    """Poll GET /runs/{id} until the run has finished, or raise after `timeout` seconds."""
    run: dict[str, Any] = {"status": "unanswered"}

    def finished() -> dict[str, Any] | None:
        nonlocal run
        # one poll the loaded API answers late is not the end of the wait
        with contextlib.suppress(httpx.TimeoutException):
            run = httpx.get(f"{api_url}/runs/{run_id}", timeout=5).json()
        return run if run["status"] in FINISHED else None

    done = poll(finished, timeout, interval=0.25)
    if done is None:
        raise StartTimeout(f"run {run_id} still {run['status']} after {timeout:.0f} s")
    return done
