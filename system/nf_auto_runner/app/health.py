"""GET /health: database and storage, answered within a second whatever the database does.

The database probe is `SELECT 1` with a hard 0.5 s deadline (see `Database.probe`); storage
is a small file written, fsynced and deleted in the models and logs directories, so a full
or read-only disk shows up here, with ENOSPC named. Redis, the forecast cache, is low priority
(runbook §2.1): when it is down the component says `degraded` and is listed under `degraded`,
but the answer stays 200 (forecasts are still served, cached in process meanwhile). So is
the Ray cluster when runs train on it (`ray_cluster`): new runs are refused meanwhile.
"""

from __future__ import annotations

import contextlib
import errno
import os
import time
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from nf_auto_runner import ray_cluster

__all__ = ["check_storage", "router"]

router = APIRouter()


def check_storage(dirs: list[Path]) -> dict[str, Any]:
    """Write+fsync+delete a probe file in each directory."""
    t0 = time.perf_counter()
    errors = []
    for d in dirs:
        probe = d / f".health_probe_{os.getpid()}"
        try:
            fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(fd, b"nf_auto_runner health probe\n" * 4)
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                errors.append(f"{d}: no space left on device (ENOSPC)")
            else:
                code = errno.errorcode.get(exc.errno or 0, "?")
                errors.append(f"{d}: {exc.strerror or exc} ({code})")
        finally:
            with contextlib.suppress(OSError):
                probe.unlink(missing_ok=True)
    result: dict[str, Any] = {
        "status": "ok" if not errors else "error",
        "latency_ms": round((time.perf_counter() - t0) * 1000, 2),
        "paths": [str(d) for d in dirs],
    }
    if errors:
        result["error"] = "; ".join(errors)
    return result


@router.get("/health")
def health(request: Request) -> JSONResponse:
    state = request.app.state
    probe = state.db.probe()
    database: dict[str, Any] = {
        "status": "ok" if probe.ok else "error",
        "latency_ms": round(probe.latency_ms, 2),
    }
    if not probe.ok:
        database["error"] = probe.error
    if probe.busy:
        database["pool"] = "saturated: every pooled connection is in use"
    database["pool_stats"] = state.db.stats()
    storage = check_storage([state.settings.models_dir, state.settings.logs_dir])
    components = {"database": database, "storage": storage}
    failing = [name for name, c in components.items() if c["status"] != "ok"]
    components["redis"] = state.predictor.results.status()
    if (ray := ray_cluster.status()) is not None:  # training on Ray: new runs need it
        components["ray"] = ray
    body: dict[str, Any] = {
        "status": "ok" if not failing else "unhealthy",
        "components": components,
    }
    degraded = [n for n in ("redis", "ray") if n in components and
                components[n]["status"] == "degraded"]  # fmt: skip
    if degraded:
        body["degraded"] = degraded
    if failing:
        body["failing"] = failing
        body["error"] = "; ".join(f"{n}: {components[n].get('error')}" for n in failing)
    return JSONResponse(body, status_code=503 if failing else 200)
