"""Training one NeuralForecast model on one series, honestly evaluated.

The model is fitted on the series minus its last `h` points and scored (MAE, RMSE, MAPE) on
those held-out points; that same model is saved. At prediction time it is given the full
series, so forecasts start after the last observation. One fit per run keeps a run within
seconds on a CPU.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import math
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["TrainResult", "build_model", "dir_size", "quiet_lightning", "train"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainResult:
    path: Path
    training_seconds: float
    size_bytes: int
    metrics: dict[str, float]


def quiet_lightning() -> None:
    """No progress bars, banners or warnings from Lightning in logs."""
    import warnings

    warnings.filterwarnings("ignore")
    for name in ("lightning", "lightning.pytorch", "pytorch_lightning", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _accelerator(gpu_memory_limit: float, parallel_runs: int) -> str:
    """GPU (capped at GPU_MEMORY_LIMIT of its memory) when CUDA is there, else CPU with the
    cores shared between the parallel runs instead of each run using all of them."""
    import torch

    if torch.cuda.is_available():
        torch.cuda.set_per_process_memory_fraction(gpu_memory_limit)
        return "gpu"
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // max(1, parallel_runs)))
    return "cpu"


def build_model(
    model_name: str, h: int, input_size: int, max_steps: int, accelerator: str, seed: int = 1
) -> Any:
    """A small CPU-friendly MLP or NHITS with no loggers, checkpoints or progress bars."""
    from neuralforecast.models import MLP, NHITS

    common: dict[str, Any] = dict(
        h=h,
        input_size=input_size,
        max_steps=max_steps,
        scaler_type="robust",
        random_seed=seed,
        accelerator=accelerator,
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        val_check_steps=max(max_steps + 1, 100),
    )
    if model_name == "MLP":
        return MLP(hidden_size=128, num_layers=2, **common)
    if model_name == "NHITS":
        return NHITS(mlp_units=[[64, 64]] * 3, **common)
    raise ValueError(f"unknown model {model_name!r}; use MLP or NHITS")


def _save(nf: Any, out_dir: Path) -> None:
    """nf.save + fsync; a full disk surfaces as OSError(ENOSPC), whatever layer noticed it.

    torch's zip writer reports a full disk as a RuntimeError ("file write failed"); the
    runbook's diagnosis (§5.2.4) looks for "No space left on device", so it is named here.
    A partial model directory is removed so it does not hold the space.
    """
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        nf.save(path=str(out_dir), overwrite=True, save_dataset=False)
        _fsync_tree(out_dir)
    except Exception as exc:
        shutil.rmtree(out_dir, ignore_errors=True)
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            raise
        if _disk_full(out_dir.parent):
            raise OSError(
                errno.ENOSPC,
                f"No space left on device while saving the model to "
                f"{out_dir} ({type(exc).__name__}: {exc})",
            ) from exc
        raise


def _disk_full(directory: Path) -> bool:
    probe = directory / f".space_probe_{os.getpid()}"
    try:
        with open(probe, "wb") as fh:
            fh.write(b"\0" * 65536)
            fh.flush()
            os.fsync(fh.fileno())
        return False
    except OSError as exc:
        return exc.errno == errno.ENOSPC
    finally:
        with contextlib.suppress(OSError):
            probe.unlink()


def _fsync_tree(path: Path) -> None:
    """Make the saved model durable (and surface ENOSPC here, not later)."""
    for p in path.rglob("*"):
        if p.is_file():
            fd = os.open(p, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


def dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def train(
    *,
    model_name: str,
    freq: str,
    points: list[dict[str, Any]],
    h: int,
    max_steps: int,
    out_dir: Path,
    gpu_memory_limit: float,
    parallel_runs: int = 1,
) -> TrainResult:
    """Fit on all but the last h points, score on them, save to out_dir."""
    import numpy as np
    import pandas as pd
    from neuralforecast import NeuralForecast

    quiet_lightning()
    n = len(points)
    if n < 3 * h:
        raise ValueError(f"series has {n} points, too short for horizon {h} (need {3 * h})")
    df = pd.DataFrame(
        {
            "unique_id": "series",
            "ds": pd.to_datetime([p["ds"] for p in points]),
            "y": [float(p["y"]) for p in points],
        }
    )
    train_df, holdout = df.iloc[:-h], df.iloc[-h:]
    input_size = max(1, min(2 * h, len(train_df) - h))
    accelerator = _accelerator(gpu_memory_limit, parallel_runs)
    model = build_model(model_name, h, input_size, max_steps, accelerator)
    nf = NeuralForecast(models=[model], freq=freq)
    t0 = time.perf_counter()
    nf.fit(df=train_df)
    seconds = time.perf_counter() - t0
    pred = nf.predict(df=train_df)
    yhat = pred[next(c for c in pred.columns if c not in ("unique_id", "ds"))].to_numpy()
    y = holdout["y"].to_numpy()
    err = yhat - y
    metrics = {
        "mae": float(np.mean(np.abs(err))),
        "rmse": float(math.sqrt(float(np.mean(err**2)))),
        "mape": float(np.mean(np.abs(err) / np.maximum(np.abs(y), 1e-9)) * 100),
    }
    _save(nf, out_dir)
    return TrainResult(out_dir, seconds, dir_size(out_dir), metrics)
