"""Concurrent forecasts on one model share forward passes instead of queueing behind a lock.

Requests join a bounded queue per model. Whoever finds the model idle runs one forward pass
over everything queued (up to MAX_BATCH windows) and hands the next pass to the oldest
request still waiting, so no request runs more than one pass for others and none waits for a
lock while the model is idle. Rows are scaled independently, so a batched result equals the
single one (`tests/test_predictor_batching.py`). A full queue is refused at once
(`Overloaded`, answered 503 with Retry-After) rather than letting latency grow without bound.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

__all__ = ["Batcher", "Overloaded"]

MAX_BATCH = 64


class Overloaded(RuntimeError):
    """The model's queue is full: the API answers 503 with Retry-After."""


@dataclass
class _Job:
    window: list[float]
    mask: list[float]
    done: threading.Event = field(default_factory=threading.Event)
    lead: bool = False
    result: list[float] | None = None
    error: BaseException | None = None


class Batcher:
    """One model's queue. `run` maps ([B, L] windows, [B, L] masks) to [B, h] forecasts."""

    def __init__(
        self,
        run: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        *,
        max_pending: int = 256,
        window_seconds: float = 0.0,
        on_pass: Callable[[int], None] | None = None,
    ) -> None:
        self._run = run
        self._max_pending = max_pending
        self._window = window_seconds
        self._on_pass = on_pass
        self._lock = threading.Lock()
        self._pending: list[_Job] = []
        self._busy = False

    def submit(self, window: list[float], mask: list[float]) -> list[float]:
        """The forecast for one window; blocks the calling (worker) thread until it is done."""
        job = _Job(window, mask)
        with self._lock:
            if len(self._pending) >= self._max_pending:
                raise Overloaded(
                    f"{len(self._pending)} forecasts already queued on this model; retry shortly"
                )
            self._pending.append(job)
            job.lead = not self._busy
            self._busy = True
        while True:
            if job.lead:  # the model is ours to run: this pass includes our own window
                job.lead = False
                self._one_pass()
            if job.result is not None or job.error is not None:
                break
            job.done.wait()  # set when our result is in, or when the next pass is ours
            job.done.clear()
        if job.error is not None:
            raise job.error
        assert job.result is not None
        return job.result

    def _one_pass(self) -> None:
        if self._window > 0:
            time.sleep(self._window)  # let concurrent requests join this pass
        with self._lock:
            batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
        try:
            out = self._run(
                torch.tensor([j.window for j in batch], dtype=torch.float32),
                torch.tensor([j.mask for j in batch], dtype=torch.float32),
            )
            rows = out.tolist()
            for j, row in zip(batch, rows, strict=True):
                j.result = row
        except BaseException as exc:  # every waiter hears about it, not only this thread
            for j in batch:
                j.error = exc
        if self._on_pass is not None:
            self._on_pass(len(batch))
        with self._lock:
            if self._pending:
                self._pending[0].lead = True  # the oldest waiter runs the next pass
                self._pending[0].done.set()
            else:
                self._busy = False
        for j in batch:
            j.done.set()
