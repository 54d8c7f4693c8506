"""Small real NeuralForecast models trained on the stack's shipped series, for tests.

The stack's own trainer (`nf_auto_runner.trainer.train`) fits them, so the saved directories
are exactly what a run deploys; a few steps keep a fit within seconds on the 2-core box.
"""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Any

#: (model, series, horizon) per model type: a monthly and a daily series, two horizons
CASES = {"MLP": ("airpassengers", 12), "NHITS": ("synthetic_1", 7)}
STEPS = 10


def offered_models() -> tuple[str, ...]:
    """Every model type POST /runs accepts: the equality test must cover each of them."""
    from nf_auto_runner.app.api import RunRequest

    return typing.get_args(RunRequest.model_fields["model_name"].annotation)


def points(series_id: str) -> tuple[str, list[dict[str, Any]]]:
    from nf_auto_runner.data import builtin_series

    spec = next(s for s in builtin_series() if s.series_id == series_id)
    return spec.freq, [{"ds": ds, "y": y} for ds, y in spec.points]


def train_small(
    out: Path,
    model_name: str,
    series_id: str | None = None,
    h: int | None = None,
    steps: int = STEPS,
) -> Path:
    from nf_auto_runner.trainer import train

    default_series, default_h = CASES[model_name]
    freq, pts = points(series_id or default_series)
    train(
        model_name=model_name,
        freq=freq,
        points=pts,
        h=h or default_h,
        max_steps=steps,
        out_dir=out,
        gpu_memory_limit=0.5,
    )
    return out
