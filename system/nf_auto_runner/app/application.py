"""The FastAPI application: routes, middleware, error mapping, and the process's lifespan.

Lifespan starts the database pool and its watchdog, recovers orphaned runs, warms the
predictor (imports torch, loads current models, runs each once), starts its deploy watcher
and then the executor; on
shutdown it stops the executor (requeueing its runs) and closes the pool.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import anyio.to_thread
import psycopg
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from nf_auto_runner.app import api, health, metrics
from nf_auto_runner.app.maintenance import maintenance_response
from nf_auto_runner.config import Settings
from nf_auto_runner.db import Database, DatabaseUnavailable
from nf_auto_runner.executor import Executor
from nf_auto_runner.predictor import Predictor

__all__ = ["create_app"]

log = logging.getLogger("nf_auto_runner.app")


def _unexpected(request: Request, exc: Exception) -> Response:
    """Genuinely unexpected errors: logged (error.log, system_logs), clean 500 JSON."""
    if isinstance(exc, DatabaseUnavailable):
        return JSONResponse({"detail": "database unavailable"}, status_code=503)
    log.error("unhandled error on %s %s: %s", request.method, request.url.path, exc, exc_info=exc)
    return JSONResponse({"detail": "internal server error"}, status_code=500)


async def _warm_route(app: FastAPI, series_id: str) -> int:
    """One forecast through the routing, validation, threadpool and JSON path, in process
    and without the HTTP middleware (it is not traffic): the first real request after
    /health says 200 then finds none of that cold. Returns the status."""
    status: list[int] = []

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, object]) -> None:
        if message["type"] == "http.response.start":
            status.append(int(message["status"]))  # type: ignore[call-overload]

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": f"/forecast/{series_id}",
        "raw_path": f"/forecast/{series_id}".encode(),
        "query_string": b"horizon=1",
        "root_path": "",
        "headers": [(b"host", b"warm-up")],
        "client": ("127.0.0.1", 0),
        "server": ("127.0.0.1", 0),
        "app": app,
    }
    await app.router(scope, receive, send)  # type: ignore[arg-type]
    return status[0] if status else 0


def _warm_up(predictor: Predictor, db: Database) -> list[str]:
    """Ready means ready to forecast: torch imported and current models loaded and run
    once before the first request is served (otherwise the first forecasts after a restart
    wait on the import and the load, and miss the latency SLO)."""
    t0 = time.monotonic()
    try:
        with db.connection(timeout=2.0) as conn:
            warmed = predictor.warm_up(conn)
    except DatabaseUnavailable:
        predictor.warm_up(None)
        warmed = []
    log.info("predictor warmed in %.1f s (models of runs %s)", time.monotonic() - t0, warmed)
    return predictor.warm_series


def create_app(settings: Settings, *, run_executor: bool = True) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = Database(settings)
        app.state.db = db
        app.state.predictor = Predictor()
        executor = Executor(settings, db)
        app.state.executor = executor
        db.start_watchdog()
        try:
            lost = executor.recover_at_startup()
            if lost:
                log.warning("start-up recovery: runs %s marked failed (orphaned)", lost)
        except DatabaseUnavailable:
            log.error("start-up recovery skipped: database unavailable")
        warm_series = await anyio.to_thread.run_sync(_warm_up, app.state.predictor, db)
        if warm_series:
            try:
                await _warm_route(app, warm_series[0])
            except Exception as exc:  # costs the first request some ms, never the start
                log.warning("warm-up request failed: %s", exc)
        app.state.predictor.start_watcher(db.connection)
        metrics.watch_predictor(app.state.predictor)
        if run_executor:
            executor.start()
        log.info("nf_auto_runner started (max %d parallel runs)", settings.max_parallel_runs)
        try:
            yield
        finally:
            log.info("nf_auto_runner shutting down")
            executor.stop()
            app.state.predictor.stop()
            db.close()

    app = FastAPI(title="nf_auto_runner", version="1.0", lifespan=lifespan)
    app.state.settings = settings

    @app.middleware("http")
    async def gatekeeper(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        async def inner(req: Request) -> Response:
            blocked = maintenance_response(settings.maintenance_flag, req.url.path)
            return blocked if blocked is not None else await call_next(req)

        return await metrics.observe_request(request, inner, _unexpected)

    @app.exception_handler(DatabaseUnavailable)
    async def db_unavailable(request: Request, exc: DatabaseUnavailable) -> Response:
        return JSONResponse({"detail": "database unavailable"}, status_code=503)

    @app.exception_handler(psycopg.errors.QueryCanceled)
    async def statement_timeout(request: Request, exc: Exception) -> Response:
        log.error(
            "statement timed out on %s %s: %s",
            request.method,
            request.url.path,
            str(exc).strip().splitlines()[0] if str(exc).strip() else "QueryCanceled",
        )
        return JSONResponse({"detail": "database busy: statement timed out"}, status_code=503)

    @app.get("/metrics", include_in_schema=False)
    def prometheus_metrics(request: Request) -> Response:
        db: Database = request.app.state.db
        probe = db.last_probe
        metrics.set_pool_gauges(db.stats(), None if probe is None else probe.ok)
        return Response(metrics.render(), media_type=metrics.CONTENT_TYPE_LATEST)

    app.include_router(health.router)
    app.include_router(api.router)
    return app
