"""HTTP probes."""

from __future__ import annotations

import httpx

__all__ = ["http_ok", "http_status"]


def http_status(url: str, timeout: float = 1.0) -> int | None:
    """The status `GET url` answers within `timeout` seconds; None when nothing answered."""
    try:
        return httpx.get(url, timeout=timeout).status_code
    except httpx.HTTPError:
        return None


def http_ok(url: str, timeout: float = 1.0) -> bool:
    """True when `url` answers 200 within `timeout` seconds."""
    return http_status(url, timeout) == 200
