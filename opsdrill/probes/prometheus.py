"""Prometheus probes: is an alert firing, what does a query return."""

from __future__ import annotations

import httpx

__all__ = ["alert_state", "query_value"]


def alert_state(prometheus_url: str, alertname: str, timeout: float = 1.0) -> str | None:
    """'firing', 'pending' or None for the named alert (the most severe state of its series)."""
    resp = httpx.get(f"{prometheus_url}/api/v1/alerts", timeout=timeout)
    resp.raise_for_status()
    states = {
        a["state"]
        for a in resp.json()["data"]["alerts"]
        if a["labels"].get("alertname") == alertname
    }
    for state in ("firing", "pending"):
        if state in states:
            return state
    return None


def query_value(prometheus_url: str, expr: str, timeout: float = 1.0) -> float | None:
    """The first sample of an instant query, or None when the result is empty."""
    resp = httpx.get(f"{prometheus_url}/api/v1/query", params={"query": expr}, timeout=timeout)
    resp.raise_for_status()
    result = resp.json()["data"]["result"]
    return float(result[0]["value"][1]) if result else None
