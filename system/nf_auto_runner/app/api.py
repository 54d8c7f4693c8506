"""Forecast, run and model endpoints.

Forecasts need no key; anything that changes state needs `X-API-Key`. Bad input is 422,
unknown ids 404, a finished run cannot be cancelled (409), and a database outage is 503.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable, Coroutine
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, HTTPException, Path, Query, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from nf_auto_runner import ray_cluster, runs
from nf_auto_runner.batcher import Overloaded
from nf_auto_runner.predictor import HorizonTooLong, ModelNotFound
from pydantic import BaseModel, ConfigDict, Field

__all__ = ["router"]

log = logging.getLogger("nf_auto_runner.auth")

SeriesId = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.\-]+$")]
Status = Literal["scheduled", "running", "completed", "failed", "cancelled"]
RunId = Annotated[int, Path(ge=1, le=2**63 - 1)]
#: free text the database stores: PostgreSQL text cannot hold NUL (it was a 500)
NO_NUL = r"^[^\x00]*$"


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())
    series_id: SeriesId
    horizon: int = Field(12, ge=1, le=1000)
    model: Literal["MLP", "NHITS"] | None = None


class RunRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())
    series_id: SeriesId
    model_name: Literal["MLP", "NHITS"] = "MLP"
    horizon: int = Field(12, ge=1, le=100)
    run_name: str | None = Field(None, max_length=200, pattern=NO_NUL)
    max_steps: int | None = Field(None, ge=1, le=5000)


def require_api_key(request: Request, x_api_key: Annotated[str | None, Header()] = None) -> None:
    """401 unless X-API-Key matches NF_API_KEY (compared in constant time); each refusal is
    an audit row in system_logs for the monthly security review (runbook §3.3.2)."""
    expected = request.app.state.settings.api_key
    if not x_api_key or not expected or not hmac.compare_digest(x_api_key, expected):
        client = request.client.host if request.client else "unknown"
        agent = request.headers.get("user-agent", "")[:120].encode("ascii", "replace").decode()
        log.warning(
            "authentication failed: %s X-API-Key from %s on %s %s (user agent %r)",
            "missing" if not x_api_key else "invalid",
            client,
            request.method,
            request.url.path,
            agent,
            extra={"audit": True},
        )
        raise HTTPException(
            401, "missing or invalid X-API-Key header", headers={"WWW-Authenticate": "X-API-Key"}
        )


class KeyFirstRoute(APIRoute):
    """A route that depends on `require_api_key` checks the key before reading the body:
    FastAPI parses JSON before it solves dependencies, so without this an unauthenticated
    caller sending malformed JSON got a 422 from a guarded endpoint instead of a 401."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        if not any(d.dependency is require_api_key for d in self.dependencies):
            return handler

        async def key_first(request: Request) -> Response:
            require_api_key(request, request.headers.get("x-api-key"))
            return await handler(request)

        return key_first


router = APIRouter(route_class=KeyFirstRoute)


CACHE_BYPASS = "bypass"


def cache_bypass(
    request: Request,
    x_forecast_cache: Annotated[str | None, Header()] = None,
    x_api_key: Annotated[str | None, Header()] = None,
) -> bool:
    """`X-Forecast-Cache: bypass` runs the model even when the forecast is cached, so a
    load test measures inference, not the cache. Off by default; an operator's switch, so it
    needs a valid X-API-Key (401 otherwise, never silently ignored), and any other value is
    a 422 rather than a request that quietly measures the cache."""
    if x_forecast_cache is None:
        return False
    if x_forecast_cache.strip().lower() != CACHE_BYPASS:
        raise HTTPException(
            422, f"X-Forecast-Cache must be {CACHE_BYPASS!r} (or absent), not {x_forecast_cache!r}"
        )
    require_api_key(request, x_api_key)
    return True


Bypass = Annotated[bool, Depends(cache_bypass)]


def _forecast(
    request: Request, series_id: str, horizon: int, model: str | None, bypass: bool
) -> Any:
    """Runs in the threadpool (sync route): database reads and the forward pass never
    block the event loop."""
    state = request.app.state
    with state.db.connection() as conn:
        try:
            return state.predictor.forecast(conn, series_id, horizon, model, bypass_cache=bypass)
        except ModelNotFound as exc:
            raise HTTPException(404, str(exc)) from exc
        except HorizonTooLong as exc:
            raise HTTPException(422, str(exc)) from exc
        except Overloaded as exc:
            raise HTTPException(503, str(exc), headers={"Retry-After": "1"}) from exc


@router.post("/predict")
def predict(request: Request, body: PredictRequest, bypass: Bypass) -> Any:
    return _forecast(request, body.series_id, body.horizon, body.model, bypass)


@router.get("/forecast/{series_id}")
def forecast(
    request: Request,
    series_id: Annotated[str, Path(max_length=100, pattern=NO_NUL)],
    bypass: Bypass,
    horizon: Annotated[int, Query(ge=1, le=1000)] = 12,
    model: Literal["MLP", "NHITS"] | None = None,
) -> Any:
    return _forecast(request, series_id, horizon, model, bypass)


@router.post("/runs", status_code=201, dependencies=[Depends(require_api_key)])
def create_run(request: Request, body: RunRequest) -> JSONResponse:
    if (ray_address := ray_cluster.address()) and (error := ray_cluster.probe(ray_address)):
        raise HTTPException(
            503, ray_cluster.unavailable_message(ray_address, error), headers={"Retry-After": "5"}
        )
    with request.app.state.db.connection() as conn:
        n = conn.execute(
            "SELECT count(s.ds) AS n, bool_or(c.series_id IS NOT NULL) AS known "
            "FROM series_catalog c LEFT JOIN series s USING (series_id) "
            "WHERE c.series_id = %s",
            (body.series_id,),
        ).fetchone()
        if n is None or not n["known"]:
            raise HTTPException(404, f"unknown series {body.series_id!r}")
        if n["n"] < 3 * body.horizon:
            raise HTTPException(
                422,
                f"series {body.series_id!r} has {n['n']} points, too few "
                f"for horizon {body.horizon} (need {3 * body.horizon})",
            )
        params = {"max_steps": body.max_steps} if body.max_steps else {}
        row = runs.create(
            conn,
            series_id=body.series_id,
            model_name=body.model_name,
            horizon=body.horizon,
            run_name=body.run_name,
            params=params,
        )
    return JSONResponse(jsonable_encoder(row), status_code=201)


@router.get("/runs")
def list_runs(
    request: Request,
    status: Status | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Any:
    with request.app.state.db.connection() as conn:
        return jsonable_encoder(runs.list_runs(conn, status, limit))


@router.get("/runs/{run_id}")
def get_run(request: Request, run_id: RunId) -> Any:
    with request.app.state.db.connection() as conn:
        row = runs.get(conn, run_id)
    if row is None:
        raise HTTPException(404, f"run {run_id} not found")
    return jsonable_encoder(row)


@router.post("/runs/{run_id}/cancel", dependencies=[Depends(require_api_key)])
def cancel_run(
    request: Request,
    run_id: RunId,
    reason: Annotated[str | None, Query(max_length=500)] = None,
) -> Any:
    with request.app.state.db.connection() as conn:
        row = runs.cancel(conn, run_id, reason)
        if row is None:
            current = runs.get(conn, run_id)
            if current is None:
                raise HTTPException(404, f"run {run_id} not found")
            raise HTTPException(
                409,
                f"run {run_id} already {current['status']}; "
                f"only scheduled or running runs can be cancelled",
            )
    return jsonable_encoder(row)


@router.get("/models")
def list_models(
    request: Request,
    series_id: Annotated[str | None, Query(max_length=100, pattern=NO_NUL)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Any:
    with request.app.state.db.connection() as conn:
        rows = conn.execute(
            "SELECT m.model_id, m.run_id, m.model_name, m.series_id, m.horizon, m.path, "
            "m.training_duration_seconds, m.model_size_bytes, m.created_at, "
            "COALESCE(jsonb_object_agg(mt.name, mt.value) FILTER (WHERE mt.name IS NOT NULL), "
            "'{}'::jsonb) AS metrics "
            "FROM models m JOIN runs r ON r.run_id = m.run_id AND r.status = 'completed' "
            "LEFT JOIN metrics mt ON mt.run_id = m.run_id "
            "WHERE (%s::text IS NULL OR m.series_id = %s) "
            "GROUP BY m.model_id ORDER BY m.model_id DESC LIMIT %s",
            (series_id, series_id, limit),
        ).fetchall()
    return jsonable_encoder(rows)
