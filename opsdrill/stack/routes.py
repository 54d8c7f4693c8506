"""The app's API routes by request kind: what the load gate requests, what slo.yaml names."""

from __future__ import annotations

__all__ = ["ROUTES"]

ROUTES = {
    "forecast:popular": "/forecast/{series_id}",
    "forecast:long-tail": "/forecast/{series_id}",
    "predict:popular": "/predict",
    "health": "/health",
    "metrics": "/metrics",
    "models": "/models",
    "runs:get": "/runs/{run_id}",
    "runs:submit": "/runs",
    # cache-cold: any series with a model, any horizon it allows, result cache bypassed
    "forecast:cold": "/forecast/{series_id}",
    "predict:cold": "/predict",
}
