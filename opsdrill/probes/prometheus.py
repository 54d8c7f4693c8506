"""Prometheus's HTTP API, the one client: instant queries, alerts, the loaded config and rules.

Drill detectors poll it with a short timeout (a probe that cannot answer has not seen the
condition); checks read it once with a longer one. Every answer that is not a success is a
`PrometheusError` naming the path, the query and what Prometheus said.
"""

from __future__ import annotations

import math
from typing import Any

import httpx

from opsdrill.errors import OpsdrillError

__all__ = [
    "PrometheusError",
    "alert_state",
    "config_yaml",
    "loaded_rules",
    "query_max",
]


class PrometheusError(OpsdrillError):
    """The request failed; the message names the path, the query and Prometheus's answer."""


def _get(url: str, path: str, params: dict[str, str] | None = None, timeout: float = 5.0) -> Any:
    resp = httpx.get(f"{url}{path}", params=params, timeout=timeout)
    try:
        body = resp.json()
    except ValueError:
        body = {}
    if resp.status_code != 200 or body.get("status") != "success":
        raise PrometheusError(f"{path} {params or ''} answered {resp.status_code}: "
                              f"{body.get('error', resp.text[:200])}")  # fmt: skip
    return body["data"]


def query_max(url: str, expr: str, timeout: float = 5.0) -> tuple[float, dict[str, str]] | None:
    """The largest value of an instant query with its labels; None when it returns nothing.

    NaN samples (a quantile over a zero rate) count as nothing: a panel shows them blank."""
    data = _get(url, "/api/v1/query", {"query": expr}, timeout)
    found = [(float(r["value"][1]), r["metric"]) for r in data["result"]]
    found = [f for f in found if not math.isnan(f[0])]
    return max(found, key=lambda f: f[0]) if found else None


def alert_state(url: str, alertname: str, timeout: float = 1.0) -> str | None:
    """'firing', 'pending' or None for the named alert (the most severe state of its series)."""
    alerts = _get(url, "/api/v1/alerts", timeout=timeout)["alerts"]
    states = {a["state"] for a in alerts if a["labels"].get("alertname") == alertname}
    for state in ("firing", "pending"):
        if state in states:
            return state
    return None


def config_yaml(url: str) -> str:
    return str(_get(url, "/api/v1/status/config")["yaml"])


def flags(url: str) -> dict[str, str]:
    """The command-line flags Prometheus runs with (where its config file is, for one)."""
    return {str(k): str(v) for k, v in _get(url, "/api/v1/status/flags").items()}


def loaded_rules(url: str) -> list[dict[str, Any]]:
    """Every rule Prometheus has loaded, flattened out of its groups."""
    groups = _get(url, "/api/v1/rules")["groups"]
    return [rule for group in groups for rule in group["rules"]]
