"""Forecasts from saved models: newest completed model per series, loaded once, cached.

Loaded models live in an LRU keyed by run_id; a computed forecast is cached per
(run_id, last observation, number of points), so a repeated request costs one small query.
Predictions on the same model are serialised: Lightning attaches a trainer to the model.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import psycopg

from nf_auto_runner.data import load_series

__all__ = ["ModelNotFound", "Predictor", "find_model"]

log = logging.getLogger(__name__)

MODEL_CACHE_SIZE = 16
RESULT_CACHE_SIZE = 256
#: a cached forecast is recomputed after this long, so an in-place edit of a series'
#: values (same length, same last date) shows up within minutes (runbook §6.2.2's TTL)
RESULT_TTL = 300.0


class ModelNotFound(LookupError):
    """No series, or no completed model for it: the API answers 404 with this message."""


class HorizonTooLong(ValueError):
    """More steps were asked for than the model was trained for: the API answers 422."""


@dataclass(frozen=True)
class ModelRef:
    run_id: int
    model_name: str
    series_id: str
    horizon: int
    path: str


def find_model(conn: psycopg.Connection[Any], series_id: str, model_name: str | None) -> ModelRef:
    """The newest completed model for the series (and model name, if given)."""
    row = conn.execute(
        "SELECT m.run_id, m.model_name, m.series_id, m.horizon, m.path FROM models m "
        "JOIN runs r ON r.run_id = m.run_id WHERE m.series_id = %s AND r.status = 'completed' "
        "AND (%s::text IS NULL OR m.model_name = %s) ORDER BY m.created_at DESC, m.model_id DESC "
        "LIMIT 1",
        (series_id, model_name, model_name),
    ).fetchone()
    if row is None:
        known = conn.execute(
            "SELECT 1 FROM series_catalog WHERE series_id = %s", (series_id,)
        ).fetchone()
        if known is None:
            raise ModelNotFound(f"unknown series {series_id!r}")
        which = f"{model_name} model" if model_name else "model"
        raise ModelNotFound(
            f"no trained {which} for series {series_id!r}; schedule a run with POST /runs"
        )
    return ModelRef(**row)


class Predictor:
    """Holds loaded NeuralForecast models and recent forecasts."""

    def __init__(self) -> None:
        self._models: OrderedDict[int, tuple[Any, threading.Lock]] = OrderedDict()
        #: (run_id, last ds, points) -> (computed at, forecast); see RESULT_TTL
        self._results: OrderedDict[tuple[int, str, int], tuple[float, list[dict[str, Any]]]] = (
            OrderedDict()
        )
        self._lock = threading.Lock()

    @property
    def cached_models(self) -> int:
        return len(self._models)

    def warm_up(self, conn: psycopg.Connection[Any] | None) -> list[int]:
        """Import NeuralForecast and load the newest model of each series, so the first
        forecast after a start is as fast as any other (the import alone takes seconds).
        Returns the run_ids warmed; a failure here only costs speed, never the start."""
        from nf_auto_runner.trainer import quiet_lightning

        quiet_lightning()
        import neuralforecast  # noqa: F401

        if conn is None:
            return []
        newest = conn.execute(
            "SELECT DISTINCT ON (m.series_id) m.series_id, m.horizon FROM models m "
            "JOIN runs r ON r.run_id = m.run_id AND r.status = 'completed' "
            "ORDER BY m.series_id, m.created_at DESC, m.model_id DESC LIMIT %s",
            (MODEL_CACHE_SIZE,),
        ).fetchall()
        warmed = []
        for row in newest:
            try:
                warmed.append(self.forecast(conn, row["series_id"], row["horizon"], None)["run_id"])
            except Exception as exc:  # a broken model must not stop the start
                log.warning("warm-up of series %s failed: %s", row["series_id"], exc)
        return warmed

    def _model(self, ref: ModelRef) -> tuple[Any, threading.Lock]:
        with self._lock:
            hit = self._models.get(ref.run_id)
            if hit is not None:
                self._models.move_to_end(ref.run_id)
                return hit
        from neuralforecast import NeuralForecast

        from nf_auto_runner.trainer import quiet_lightning

        quiet_lightning()
        try:
            nf = NeuralForecast.load(path=ref.path)
        except (FileNotFoundError, OSError) as exc:
            raise ModelNotFound(
                f"model files of run {ref.run_id} are missing at {ref.path}; "
                f"retrain with POST /runs"
            ) from exc
        entry = (nf, threading.Lock())
        with self._lock:
            self._models[ref.run_id] = entry
            while len(self._models) > MODEL_CACHE_SIZE:
                self._models.popitem(last=False)
        return entry

    def forecast(
        self, conn: psycopg.Connection[Any], series_id: str, horizon: int, model_name: str | None
    ) -> dict[str, Any]:
        """{series_id, model, run_id, forecast: [{ds, value}]} for the next `horizon` steps."""
        ref = find_model(conn, series_id, model_name)
        if horizon > ref.horizon:
            raise HorizonTooLong(
                f"horizon {horizon} exceeds the model's trained horizon "
                f"{ref.horizon} (run {ref.run_id}); ask for at most "
                f"{ref.horizon} or train a longer model"
            )
        series = load_series(conn, series_id)
        if series is None:
            raise ModelNotFound(f"unknown series {series_id!r}")
        _freq, points = series
        if not points:
            raise ModelNotFound(
                f"series {series_id!r} has no observations; reseed it "
                f"(ops seed) or restore the database from a backup"
            )
        key = (ref.run_id, str(points[-1]["ds"]), len(points))
        with self._lock:
            hit = self._results.get(key)
        if hit is not None and time.monotonic() - hit[0] < RESULT_TTL:
            full = hit[1]
        else:
            full = self._predict(ref, points)
            with self._lock:
                self._results[key] = (time.monotonic(), full)
                while len(self._results) > RESULT_CACHE_SIZE:
                    self._results.popitem(last=False)
        return {
            "series_id": series_id,
            "model": ref.model_name,
            "run_id": ref.run_id,
            "forecast": full[:horizon],
        }

    def _predict(self, ref: ModelRef, points: list[dict[str, Any]]) -> list[dict[str, Any]]:
        import pandas as pd

        nf, lock = self._model(ref)
        df = pd.DataFrame(
            {
                "unique_id": "series",
                "ds": pd.to_datetime([p["ds"] for p in points]),
                "y": [float(p["y"]) for p in points],
            }
        )
        with lock:
            pred = nf.predict(df=df)
        col = next(c for c in pred.columns if c not in ("unique_id", "ds"))
        return [
            {"ds": ts.isoformat(), "value": float(v)}
            for ts, v in zip(pred["ds"], pred[col], strict=True)
        ]
