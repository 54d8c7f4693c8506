"""Forecasts from saved models: newest completed model per series, loaded once, run fast.

Models are run by `fastnet` (the trained network as a plain torch module, no Lightning, no
DataFrame; the same numbers as `NeuralForecast.predict`), one `Batcher` per model so
concurrent requests share forward passes. Loaded models live in an LRU bounded in bytes
(`NF_MODEL_CACHE_BYTES`). A model deployed while the app runs (a run completing) is loaded
in the background — noticed by a watcher thread, or by the first request that sees it — and
swapped in atomically: until it is loaded, requests keep being served by the model that was
current, so no request pays the load. A computed forecast is cached per (run_id, last
observation, number of points) for RESULT_TTL, in Redis when the stack has it (`result_cache`);
`bypass_cache` skips that cache (measurement).
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from nf_auto_runner.data import load_series
from nf_auto_runner.result_cache import ResultCache

__all__ = [
    "HorizonTooLong",
    "ModelNotFound",
    "Predictor",
    "find_model",
    "set_torch_threads",
]

log = logging.getLogger(__name__)

#: byte budget of loaded models' weights (an MLP here is ~90 kB, an NHITS ~180 kB)
MODEL_CACHE_BYTES = int(os.environ.get("NF_MODEL_CACHE_BYTES", str(256 * 2**20)))
#: forecasts waiting on one model beyond which requests are refused with 503
MAX_PENDING = int(os.environ.get("NF_MODEL_QUEUE", "256"))
#: seconds a forward pass waits for more requests to join it (0: batch only what queued
#: while the previous pass ran, which adds no latency when idle)
BATCH_WINDOW = float(os.environ.get("NF_BATCH_WINDOW_MS", "0")) / 1000.0
#: how often the deploy watcher looks for newly completed models
WATCH_SECONDS = float(os.environ.get("NF_MODEL_WATCH_SECONDS", "1.0"))
#: series warmed at start-up (newest model each)
WARM_SERIES = 64
RESULT_CACHE_SIZE = 256
#: a cached forecast is recomputed after this long, so an in-place edit of a series'
#: values (same length, same last date) shows up within minutes (runbook §6.2.2's TTL)
RESULT_TTL = 300.0

NEWEST_MODELS = (
    "SELECT DISTINCT ON (m.series_id, m.model_name) m.run_id, m.model_name, m.series_id, "
    "m.horizon, m.path, m.created_at, m.model_id FROM models m "
    "JOIN runs r ON r.run_id = m.run_id AND r.status = 'completed' "
    "ORDER BY m.series_id, m.model_name, m.created_at DESC, m.model_id DESC"
)


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


def find_model_and_key(
    conn: psycopg.Connection[Any], series_id: str, model_name: str | None
) -> tuple[ModelRef, str, int]:
    """The newest model with the series' last date and length, in one round trip: all a
    cached forecast needs (the points are read only when the model has to run)."""
    row = conn.execute(
        "SELECT m.run_id, m.model_name, m.series_id, m.horizon, m.path, k.last_ds, k.n "
        "FROM models m JOIN runs r ON r.run_id = m.run_id "
        "CROSS JOIN LATERAL (SELECT max(s.ds) AS last_ds, count(*) AS n FROM series s "
        "WHERE s.series_id = m.series_id) k "
        "WHERE m.series_id = %s AND r.status = 'completed' "
        "AND (%s::text IS NULL OR m.model_name = %s) ORDER BY m.created_at DESC, m.model_id DESC "
        "LIMIT 1",
        (series_id, model_name, model_name),
    ).fetchone()
    if row is None:
        find_model(conn, series_id, model_name)  # raises ModelNotFound naming what is missing
        raise ModelNotFound(f"no trained model for series {series_id!r}")
    last, n = row.pop("last_ds"), int(row.pop("n"))
    if n == 0:
        raise ModelNotFound(
            f"series {series_id!r} has no observations; reseed it "
            f"(ops seed) or restore the database from a backup"
        )
    return ModelRef(**row), str(last), n


def set_torch_threads() -> int:
    """One intra-op thread per forward pass by default (`NF_TORCH_THREADS` overrides).

    On the 2-core box a second intra-op thread only fights uvicorn, PostgreSQL and the other
    passes for the other core: measured, an MLP pass took ~20 ms with 2 threads under load
    and ~1 ms with 1. Concurrency comes from batching and from passes of different models
    running on different request threads, not from splitting one small matmul.
    """
    import torch

    n = int(os.environ.get("NF_TORCH_THREADS", "0")) or max(1, (os.cpu_count() or 2) // 2)
    torch.set_num_threads(n)
    # already set, or inter-op work already started: keep what is there
    with contextlib.suppress(RuntimeError):
        torch.set_num_interop_threads(1)
    return n


def _slow_forward() -> tuple[float, float]:
    """`NF_SLOW_FORWARD=SECONDS:FRACTION` adds a real delay to that fraction of forward
    passes — the load gate's meta-test of a slowed model. Off unless set."""
    raw = os.environ.get("NF_SLOW_FORWARD", "")
    if not raw:
        return 0.0, 0.0
    seconds, _, fraction = raw.partition(":")
    return float(seconds), float(fraction or 1.0)


class _Served:
    """A loaded model ready to serve: its forecaster and the bytes it holds."""

    def __init__(self, ref: ModelRef, predictor: Predictor) -> None:
        from nf_auto_runner import fastnet
        from nf_auto_runner.batcher import Batcher

        self.ref = ref
        self.fast: Any = None
        self.nf: Any = None
        self._nf_lock = threading.Lock()
        try:
            self.fast = fastnet.load(ref.path)
        except (FileNotFoundError, NotADirectoryError) as exc:
            raise ModelNotFound(
                f"model files of run {ref.run_id} are missing at {ref.path}; "
                f"retrain with POST /runs"
            ) from exc
        except fastnet.Unsupported as exc:
            log.warning("run %s: %s; predicting through NeuralForecast", ref.run_id, exc)
            self.nf = _load_neuralforecast(ref)
        self.nbytes = self.fast.nbytes if self.fast is not None else _dir_bytes(ref.path)
        delay, fraction = _slow_forward()

        def run(windows: Any, masks: Any) -> Any:
            if delay and random.random() < fraction:
                time.sleep(delay)
            return self.fast.predict(windows, masks)

        self.batcher = Batcher(
            run, max_pending=MAX_PENDING, window_seconds=BATCH_WINDOW, on_pass=predictor._passed
        )

    def predict(self, freq: str, points: list[dict[str, Any]]) -> list[dict[str, Any]]:
        last = _as_datetime(points[-1]["ds"])
        if self.nf is not None:
            return self._predict_nf(points)
        from nf_auto_runner import fastnet

        window, mask = fastnet.window([float(p["y"]) for p in points], self.fast.input_size)
        values = self.batcher.submit(window, mask)
        dates = fastnet.future_dates(last, self.fast.freq, self.fast.h)
        return [
            {"ds": ds.isoformat(), "value": float(v)} for ds, v in zip(dates, values, strict=True)
        ]

    def _predict_nf(self, points: list[dict[str, Any]]) -> list[dict[str, Any]]:
        import pandas as pd

        df = pd.DataFrame(
            {
                "unique_id": "series",
                "ds": pd.to_datetime([p["ds"] for p in points]),
                "y": [float(p["y"]) for p in points],
            }
        )
        with self._nf_lock:  # Lightning attaches a trainer to the model per call
            pred = self.nf.predict(df=df)
        col = next(c for c in pred.columns if c not in ("unique_id", "ds"))
        return [
            {"ds": ts.isoformat(), "value": float(v)}
            for ts, v in zip(pred["ds"], pred[col], strict=True)
        ]


def _load_neuralforecast(ref: ModelRef) -> Any:
    from neuralforecast import NeuralForecast
    from nf_auto_runner.trainer import quiet_lightning

    quiet_lightning()
    try:
        return NeuralForecast.load(path=ref.path)
    except (FileNotFoundError, OSError) as exc:
        raise ModelNotFound(
            f"model files of run {ref.run_id} are missing at {ref.path}; retrain with POST /runs"
        ) from exc


def _dir_bytes(path: str) -> int:
    from pathlib import Path

    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def _as_datetime(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    return datetime(value.year, value.month, value.day)


class Predictor:
    """Loaded models (LRU by bytes), the model serving each series, and recent forecasts."""

    def __init__(self, *, cache_bytes: int | None = None) -> None:
        self.cache_bytes = MODEL_CACHE_BYTES if cache_bytes is None else cache_bytes
        self._models: OrderedDict[int, _Served] = OrderedDict()
        #: (series_id, model name asked for or None) -> the run answering for it now
        self._serving: dict[tuple[str, str | None], ModelRef] = {}
        #: the run each key should move to once it is loaded (the newest the database knows)
        self._wanted: dict[tuple[str, str | None], int] = {}
        self._loading: dict[int, Future[_Served]] = {}
        self._loader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model-loader")
        #: (run_id, last ds, points) -> forecast, in Redis or in process; see RESULT_TTL
        self.results = ResultCache(ttl=RESULT_TTL, size=RESULT_CACHE_SIZE)
        self._lock = threading.Lock()
        self.model_runs = 0  # forecasts computed by running a model (not from the cache)
        self.forward_passes = 0  # batched passes those took
        self.loads = 0
        self.evictions = 0
        self._watcher: threading.Thread | None = None
        self.warm_series: list[str] = []
        self._stop = threading.Event()

    # -- what /metrics shows ------------------------------------------------------------------
    @property
    def cached_models(self) -> int:
        return len(self._models)

    @property
    def cached_bytes(self) -> int:
        with self._lock:
            return sum(s.nbytes for s in self._models.values())

    def _passed(self, batch: int) -> None:
        with self._lock:
            self.forward_passes += 1
            self.model_runs += batch

    # -- start-up and deploys ------------------------------------------------------------------
    def warm_up(self, conn: psycopg.Connection[Any] | None) -> list[int]:
        """Load the newest model of each series and run one forecast on it, so the first
        request after /health says 200 costs what any other does. Returns the run_ids warmed;
        a failure here only costs speed, never the start."""
        set_torch_threads()
        from nf_auto_runner import fastnet  # noqa: F401 - imports torch before readiness

        if conn is None:
            return []
        warmed: list[int] = []
        for key, ref in self._newest(conn).items():
            if ref.run_id in warmed or len(warmed) >= WARM_SERIES:
                continue
            try:
                warmed.append(self.forecast(conn, key[0], 1, key[1], bypass_cache=True)["run_id"])
                self.warm_series.append(key[0])
            except Exception as exc:  # a broken model must not stop the start
                log.warning("warm-up of series %s failed: %s", key[0], exc)
        return warmed

    def start_watcher(self, connection: Callable[[], AbstractContextManager[Any]]) -> None:
        """Every WATCH_SECONDS, load models newer than the ones serving, in the background."""

        def loop() -> None:
            while not self._stop.wait(WATCH_SECONDS):
                try:
                    with connection() as conn:
                        self.refresh(conn)
                except Exception as exc:  # the database may be down; try again next time
                    log.debug("model watcher: %s", exc)

        self._watcher = threading.Thread(target=loop, name="model-watcher", daemon=True)
        self._watcher.start()

    def stop(self) -> None:
        self._stop.set()
        self._loader.shutdown(wait=False, cancel_futures=True)

    def refresh(self, conn: psycopg.Connection[Any]) -> list[Future[_Served]]:
        """Start loading every newest model that differs from the one serving its key, and
        the first model of a series that had none (so its first request does not load)."""
        newest = self._newest(conn)
        with self._lock:
            stale = [
                (key, newest[key])
                for key, ref in self._serving.items()
                if key in newest and newest[key].run_id != ref.run_id
            ]
            stale += [
                (key, ref)
                for key, ref in newest.items()
                if key[1] is None and key not in self._serving and key not in self._wanted
            ]
        return [self._load_async(ref, key) for key, ref in stale]

    @staticmethod
    def _newest(conn: psycopg.Connection[Any]) -> dict[tuple[str, str | None], ModelRef]:
        """Newest completed model per (series, model name) and per series (name None)."""
        rows = conn.execute(NEWEST_MODELS).fetchall()
        out: dict[tuple[str, str | None], ModelRef] = {}
        best: dict[str, tuple[Any, int]] = {}
        for r in rows:
            ref = ModelRef(r["run_id"], r["model_name"], r["series_id"], r["horizon"], r["path"])
            out[(r["series_id"], r["model_name"])] = ref
            rank = (r["created_at"], r["model_id"])
            if r["series_id"] not in best or rank > best[r["series_id"]]:
                best[r["series_id"]] = rank
                out[(r["series_id"], None)] = ref
        return out

    def _load_async(self, ref: ModelRef, key: tuple[str, str | None]) -> Future[_Served]:
        """Load ref in the background (once, however many ask); when loaded it answers
        for `key`, unless a newer model was asked for meanwhile."""
        with self._lock:
            self._wanted[key] = ref.run_id
            hit = self._models.get(ref.run_id)
            if hit is not None:
                self._serving[key] = ref
                done: Future[_Served] = Future()
                done.set_result(hit)
                return done
            fut = self._loading.get(ref.run_id)
            if fut is None:
                fut = self._loader.submit(self._load, ref)
                self._loading[ref.run_id] = fut
            return fut

    def _load(self, ref: ModelRef) -> _Served:
        try:
            served = _Served(ref, self)
            with self._lock:  # the swap: one assignment per key, under the lock
                self.loads += 1
                self._models[ref.run_id] = served
                for key, run_id in self._wanted.items():
                    if run_id == ref.run_id:
                        self._serving[key] = ref
                self._evict()
            log.info("model of run %s loaded (%d bytes)", ref.run_id, served.nbytes)
            return served
        finally:
            with self._lock:
                self._loading.pop(ref.run_id, None)

    def _evict(self) -> None:
        """Least recently used first, until the weights fit; the newest entry always stays."""
        total = sum(s.nbytes for s in self._models.values())
        while total > self.cache_bytes and len(self._models) > 1:
            run_id, gone = self._models.popitem(last=False)
            total -= gone.nbytes
            self.evictions += 1
            for key in [k for k, r in self._serving.items() if r.run_id == run_id]:
                del self._serving[key]
            log.info("model of run %s evicted from the cache (%d bytes)", run_id, gone.nbytes)

    def _model_for(self, ref: ModelRef, model_name: str | None, horizon: int) -> _Served:
        """The model to run: the newest if loaded; else, while it loads in the background,
        the one serving now (if it covers the horizon); else load it here."""
        key = (ref.series_id, model_name)
        with self._lock:
            hit = self._models.get(ref.run_id)
            if hit is not None:
                self._models.move_to_end(ref.run_id)
                self._serving[key] = ref
                self._wanted[key] = ref.run_id
                return hit
            current = self._serving.get(key)
            old = self._models.get(current.run_id) if current is not None else None
        fut = self._load_async(ref, key)
        if old is not None and horizon <= old.ref.horizon:
            with self._lock:
                self._models.move_to_end(old.ref.run_id)
            return old
        return fut.result()

    # -- forecasts -------------------------------------------------------------------------------
    def forecast(
        self,
        conn: psycopg.Connection[Any],
        series_id: str,
        horizon: int,
        model_name: str | None,
        *,
        bypass_cache: bool = False,
    ) -> dict[str, Any]:
        """{series_id, model, run_id, forecast: [{ds, value}]} for the next `horizon` steps."""
        ref, last, n = find_model_and_key(conn, series_id, model_name)
        if horizon > ref.horizon:
            raise HorizonTooLong(
                f"horizon {horizon} exceeds the model's trained horizon "
                f"{ref.horizon} (run {ref.run_id}); ask for at most "
                f"{ref.horizon} or train a longer model"
            )
        served = self._model_for(ref, model_name, horizon)
        key = (served.ref.run_id, last, n)
        hit = None if bypass_cache else self.results.get(key)
        if hit is not None:
            full = hit
        else:
            series = load_series(conn, series_id)
            if series is None or not series[1]:
                raise ModelNotFound(
                    f"series {series_id!r} has no observations; reseed it "
                    f"(ops seed) or restore the database from a backup"
                )
            freq, points = series
            key = (served.ref.run_id, str(points[-1]["ds"]), len(points))
            full = served.predict(freq, points)
            if served.nf is not None:
                self._passed(1)
            if not bypass_cache:
                self.results.put(key, full)
        return {
            "series_id": series_id,
            "model": served.ref.model_name,
            "run_id": served.ref.run_id,
            "forecast": full[:horizon],
        }

    def loaded(self) -> Iterator[int]:
        """run_ids in the cache, least recently used first."""
        with self._lock:
            return iter(list(self._models))
