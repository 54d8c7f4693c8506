"""Prometheus's HTTP API: instant queries, the loaded config and rules."""

from __future__ import annotations

import math
from typing import Any

import httpx

__all__ = ["PrometheusError", "config_yaml", "loaded_rules", "query_max"]


class PrometheusError(Exception):
    """The query failed; the message names the query and Prometheus's answer."""


def _get(url: str, path: str, params: dict[str, str] | None = None) -> Any:
    resp = httpx.get(f"{url}{path}", params=params, timeout=5)
    body = resp.json()
    if resp.status_code != 200 or body.get("status") != "success":
        raise PrometheusError(f"{path} {params or ''} answered {resp.status_code}: "
                              f"{body.get('error', resp.text[:200])}")  # fmt: skip
    return body["data"]


def query_max(url: str, expr: str) -> tuple[float, dict[str, str]] | None:
    """The largest value of an instant query with its labels; None when it returns nothing."""
    data = _get(url, "/api/v1/query", {"query": expr})
    found = [(float(r["value"][1]), r["metric"]) for r in data["result"]]
    found = [f for f in found if not math.isnan(f[0])]
    return max(found, key=lambda f: f[0]) if found else None


def config_yaml(url: str) -> str:
    return str(_get(url, "/api/v1/status/config")["yaml"])


def loaded_rules(url: str) -> list[dict[str, Any]]:
    """Every rule Prometheus has loaded, flattened out of its groups."""
    groups = _get(url, "/api/v1/rules")["groups"]
    return [rule for group in groups for rule in group["rules"]]
