"""The predictor against a real PostgreSQL and real trained models: batched forward passes
equal single ones, the model cache stays within its byte budget (least recently used out),
and a newly deployed model is loaded in the background and swapped in atomically.

A database of its own (not the app fixture's) so deploying models here changes nothing the
API tests see."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import torch

from opsdrill.plugin.waiting import until
from system.tests.conftest import App, Postgres
from system.tests.trained_models import CASES, points, train_small

DB = "predictor_test"


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two MLPs (the second is the 'new deploy') and an NHITS, trained for real."""
    root = tmp_path_factory.mktemp("predictor_models")
    out = {name: train_small(root / name, name) for name in CASES}
    out["MLP2"] = train_small(root / "MLP2", "MLP", steps=15)  # other weights, same shape
    return out


@pytest.fixture(scope="module")
def dsn(pg: Postgres) -> Iterator[str]:
    from nf_auto_runner.data import seed
    from nf_auto_runner.db import connect
    from nf_auto_runner.migrate import migrate

    pg.sql(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
    pg.sql(f"CREATE DATABASE {DB} OWNER nf_app")
    url = pg.dsn.replace("/ts_forecast_system", f"/{DB}")
    migrate(url)
    with connect(url, autocommit=True) as conn:
        seed(conn)
    yield url
    pg.sql(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")


@pytest.fixture
def conn(dsn: str) -> Iterator[psycopg.Connection[Any]]:
    from nf_auto_runner.db import connect

    with connect(dsn, autocommit=True) as c:
        c.execute("TRUNCATE models, metrics, runs RESTART IDENTITY CASCADE")
        yield c


def deploy(conn: psycopg.Connection[Any], model: str, series_id: str, h: int, path: Path) -> int:
    """What a completed run leaves behind: a completed run and its model row."""
    from nf_auto_runner import runs

    run = runs.create(
        conn,
        series_id=series_id,
        model_name=model,
        horizon=h,
        run_name="predictor-test",
        params={},
        status="running",
    )
    conn.execute("UPDATE runs SET status = 'completed' WHERE run_id = %s", (run["run_id"],))
    conn.execute(
        "INSERT INTO models (run_id, model_name, series_id, horizon, path) "
        "VALUES (%s, %s, %s, %s, %s)",
        (run["run_id"], model, series_id, h, str(path)),
    )
    return int(run["run_id"])


def test_batched_results_equal_single_results(models: dict[str, Path]) -> None:
    """16 threads on one model while its first pass is held: they share passes, and each
    gets exactly what it would have got alone."""
    from nf_auto_runner import fastnet
    from nf_auto_runner.batcher import Batcher

    fm = fastnet.load(models["NHITS"])
    _freq, pts = points("synthetic_2")
    ys = [float(p["y"]) for p in pts]
    windows = [fastnet.window(ys[: 30 + 7 * i], fm.input_size) for i in range(16)]
    alone = [fm.predict(torch.tensor([w]), torch.tensor([m]))[0].tolist() for w, m in windows]
    release, sizes = threading.Event(), []

    def run(w: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        sizes.append(len(w))
        release.wait(10)  # hold the first pass so the others queue behind it
        return fm.predict(w, m)

    batcher = Batcher(run)
    got: dict[int, list[float]] = {}
    threads = [
        threading.Thread(target=lambda i=i: got.__setitem__(i, batcher.submit(*windows[i])))
        for i in range(16)
    ]
    for t in threads:
        t.start()
    until(lambda: len(batcher._pending) == 15, 10, "15 requests queued behind the first")
    release.set()
    for t in threads:
        t.join(10)
    assert sorted(got) == list(range(16))
    assert sizes[0] == 1 and max(sizes) > 1 and sum(sizes) == 16, sizes
    assert len(sizes) < 16, f"no batching: {sizes}"
    for i in range(16):
        assert got[i] == pytest.approx(alone[i], rel=1e-5), i


def test_a_full_queue_is_refused_not_queued_forever(models: dict[str, Path]) -> None:
    from nf_auto_runner import fastnet
    from nf_auto_runner.batcher import Batcher, Overloaded

    fm = fastnet.load(models["MLP"])
    w, m = fastnet.window([float(p["y"]) for p in points("airpassengers")[1]], fm.input_size)
    release = threading.Event()
    batcher = Batcher(lambda a, b: (release.wait(10), fm.predict(a, b))[1], max_pending=2)
    threads = [threading.Thread(target=batcher.submit, args=(w, m)) for _ in range(3)]
    for t in threads:
        t.start()
    until(lambda: len(batcher._pending) == 2, 10, "two requests queued")
    with pytest.raises(Overloaded):
        batcher.submit(w, m)
    release.set()
    for t in threads:
        t.join(10)


def test_cache_is_bounded_in_bytes_and_evicts_least_recently_used(
    conn: psycopg.Connection[Any], models: dict[str, Path]
) -> None:
    from nf_auto_runner import fastnet
    from nf_auto_runner.predictor import Predictor

    sizes = {k: fastnet.load(models[k]).nbytes for k in ("MLP", "NHITS")}
    deploy(conn, "MLP", "airpassengers", 12, models["MLP"])
    deploy(conn, "NHITS", "synthetic_1", 7, models["NHITS"])
    deploy(conn, "MLP", "synthetic_3", 12, models["MLP2"])
    budget = sizes["MLP"] + sizes["NHITS"] + sizes["MLP"] // 2  # two fit, not all three
    p = Predictor(cache_bytes=budget)
    p.forecast(conn, "airpassengers", 3, None)
    p.forecast(conn, "synthetic_1", 3, None)
    assert p.cached_bytes <= budget and p.cached_models == 2
    p.forecast(conn, "airpassengers", 3, None)  # airpassengers is now the most recent
    p.forecast(conn, "synthetic_3", 3, None)  # NHITS (least recently used) must go
    assert [r for r in p.loaded()] == [1, 3]
    assert p.evictions == 1 and p.cached_bytes <= budget
    # an evicted model is loaded again when asked for, and still answers
    assert p.forecast(conn, "synthetic_1", 3, None)["run_id"] == 2
    assert p.cached_bytes <= budget


def test_a_deployed_model_loads_in_the_background_and_swaps_in_atomically(
    conn: psycopg.Connection[Any], models: dict[str, Path]
) -> None:
    from nf_auto_runner.predictor import Predictor

    old = deploy(conn, "MLP", "airpassengers", 12, models["MLP"])
    p = Predictor()
    first = p.forecast(conn, "airpassengers", 12, None, bypass_cache=True)
    assert first["run_id"] == old
    # hold the loader, so the new model's load is provably still running
    gate = threading.Event()
    p._loader.submit(gate.wait, 10)
    new = deploy(conn, "MLP", "airpassengers", 12, models["MLP2"])
    during = p.forecast(conn, "airpassengers", 12, None, bypass_cache=True)
    assert during == first, "a request during the load must be served by the current model"
    assert p.loads == 1
    # the watcher's view agrees: the new model is being loaded, not yet serving
    p.refresh(conn)
    assert p.forecast(conn, "airpassengers", 12, None)["run_id"] == old
    gate.set()
    until(lambda: p.loads == 2, 10, "the new model loaded in the background")
    after = p.forecast(conn, "airpassengers", 12, None, bypass_cache=True)
    assert after["run_id"] == new and after["forecast"] != first["forecast"]
    assert p.loads == 2, "the first request after the swap must not load anything"


def test_the_watcher_loads_a_deploy_before_any_request_sees_it(
    dsn: str, conn: psycopg.Connection[Any], models: dict[str, Path]
) -> None:
    from nf_auto_runner import predictor as predictor_module
    from nf_auto_runner.db import connect
    from nf_auto_runner.predictor import Predictor

    deploy(conn, "MLP", "airpassengers", 12, models["MLP"])
    p = Predictor()
    p.forecast(conn, "airpassengers", 12, None)
    saved, predictor_module.WATCH_SECONDS = predictor_module.WATCH_SECONDS, 0.1
    try:
        p.start_watcher(lambda: contextlib.closing(connect(dsn, autocommit=True)))
        new = deploy(conn, "MLP", "airpassengers", 12, models["MLP2"])
        until(lambda: new in list(p.loaded()), 10, "the watcher loading the new model")
        loads = p.loads
        assert p.forecast(conn, "airpassengers", 12, None)["run_id"] == new
        assert p.loads == loads
    finally:
        p.stop()
        predictor_module.WATCH_SECONDS = saved


def test_training_workers_yield_the_cpu_to_the_api(app: App) -> None:
    """A worker trains at a lower priority than the app (nice +10), so forecasts get the CPU
    first while a model trains."""
    from system.tests.test_training import LONG, _worker_pid

    resp = app.admin.post("/runs", json={**LONG, "run_name": "nice-check"})
    assert resp.status_code == 201, resp.text
    run_id = resp.json()["run_id"]
    try:
        pid = _worker_pid(app, run_id)
        expected = min(19, _nice(app.pid) + 10)
        until(lambda: _nice(pid) == expected, 30, f"worker {pid} at nice {expected}")
    finally:
        app.admin.post(f"/runs/{run_id}/cancel")
        app.wait_run(run_id, ("cancelled", "completed", "failed"))


def _nice(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[16])
