"""HTTP probes."""

from __future__ import annotations

import httpx

__all__ = ["http_ok"]


def http_ok(url: str, timeout: float = 1.0) -> bool:
    """True when `url` answers 200 within `timeout` seconds."""
    try:
        return httpx.get(url, timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False
