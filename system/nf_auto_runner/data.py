"""Series data: the bundled AirPassengers series, deterministic synthetic series, and reads.

Nothing is downloaded: AirPassengers (1949–1960, monthly) ships as `data/airpassengers.csv`
and the synthetic series are generated from a fixed seed, so every stack holds the same data.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import datetime, timedelta
from importlib import resources
from typing import Any

import numpy as np
import psycopg

__all__ = ["SeriesSpec", "builtin_series", "load_series", "seed"]

SYNTHETIC_COUNT = 5
SYNTHETIC_DAYS = 240


@dataclass(frozen=True)
class SeriesSpec:
    series_id: str
    freq: str  # pandas frequency alias used by NeuralForecast
    description: str
    points: list[tuple[datetime, float]]


def _airpassengers() -> SeriesSpec:
    text = resources.files("nf_auto_runner").joinpath("data/airpassengers.csv").read_text()
    rows = [
        (datetime.fromisoformat(r["ds"]), float(r["y"])) for r in csv.DictReader(io.StringIO(text))
    ]
    return SeriesSpec(
        "airpassengers", "MS", "monthly airline passengers 1949-1960 (thousands)", rows
    )


def _synthetic(i: int) -> SeriesSpec:
    rng = np.random.default_rng(1000 + i)
    t = np.arange(SYNTHETIC_DAYS)
    level = 50.0 + 10.0 * i
    y = (
        level
        + 0.05 * i * t
        + (5.0 + i) * np.sin(2 * np.pi * t / 7)
        + 3.0 * np.sin(2 * np.pi * t / 30.5)
        + rng.normal(0, 1.0 + 0.2 * i, t.size)
    )
    start = datetime(2024, 1, 1)
    points = [
        (start + timedelta(days=int(k)), round(float(v), 4)) for k, v in zip(t, y, strict=True)
    ]
    return SeriesSpec(
        f"synthetic_{i}",
        "D",
        f"synthetic daily series {i} (weekly season, seed {1000 + i})",
        points,
    )


def builtin_series() -> list[SeriesSpec]:
    return [_airpassengers(), *(_synthetic(i) for i in range(1, SYNTHETIC_COUNT + 1))]


def seed(conn: psycopg.Connection[Any]) -> dict[str, int]:
    """Insert the built-in series (idempotent); return points per series."""
    counts: dict[str, int] = {}
    with conn.transaction():
        for spec in builtin_series():
            conn.execute(
                "INSERT INTO series_catalog (series_id, freq, description) VALUES (%s, %s, %s) "
                "ON CONFLICT (series_id) DO UPDATE SET freq = EXCLUDED.freq, "
                "description = EXCLUDED.description",
                (spec.series_id, spec.freq, spec.description),
            )
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO series (series_id, ds, y) VALUES (%s, %s, %s) "
                    "ON CONFLICT (series_id, ds) DO UPDATE SET y = EXCLUDED.y",
                    [(spec.series_id, ds, y) for ds, y in spec.points],
                )
            counts[spec.series_id] = len(spec.points)
        conn.execute(
            "INSERT INTO experiments (experiment_name, description) VALUES ('default', "
            "'runs scheduled without an experiment') ON CONFLICT (experiment_name) DO NOTHING"
        )
    return counts


def load_series(conn: psycopg.Connection[Any], series_id: str) -> tuple[str, list[dict]] | None:
    """(freq, [{ds, y}, ...] in time order) for a series, or None if it is unknown (one query:
    the forecast path pays every round trip to the database)."""
    rows = conn.execute(
        "SELECT c.freq, s.ds, s.y FROM series_catalog c LEFT JOIN series s USING (series_id) "
        "WHERE c.series_id = %s ORDER BY s.ds",
        (series_id,),
    ).fetchall()
    if not rows:
        return None
    return rows[0]["freq"], [{"ds": r["ds"], "y": r["y"]} for r in rows if r["ds"] is not None]
