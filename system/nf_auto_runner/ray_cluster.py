"""Where training runs execute: locally, or on the Ray cluster named by NF_RAY_ADDRESS
(or RAY_ADDRESS), e.g. `127.0.0.1:6379`, the head node's GCS address.

The API refuses new runs while that cluster does not answer (a TCP connect to the head's
GCS port, well under a second), and /health reports it as `degraded` (still 200: forecasts
do not need Ray).
"""

from __future__ import annotations

import os
import socket
import time
from typing import Any

__all__ = ["address", "probe", "status", "unavailable_message"]


def address() -> str | None:
    """The Ray cluster's address (host:port of the head's GCS), or None to train locally."""
    value = os.environ.get("NF_RAY_ADDRESS") or os.environ.get("RAY_ADDRESS") or ""
    return value.strip() or None


def _host_port(addr: str) -> tuple[str, int] | None:
    host, _, port = addr.removeprefix("ray://").rpartition(":")
    return (host or "127.0.0.1", int(port)) if port.isdigit() else None


def probe(addr: str, timeout: float = 0.5) -> str | None:
    """None when the head's GCS port accepts a connection, else why not."""
    hp = _host_port(addr)
    if hp is None:
        return None  # e.g. "auto": nothing to probe here; the submitter reports failures
    try:
        with socket.create_connection(hp, timeout=timeout):
            return None
    except OSError as exc:
        return f"{type(exc).__name__}: {exc.strerror or exc}"


def unavailable_message(addr: str, error: str) -> str:
    return (
        f"training unavailable: the Ray cluster at {addr} does not answer ({error}); "
        "new runs are refused until its head node is back (runbook 5.3.1, 7.2.1)"
    )


def status() -> dict[str, Any] | None:
    """/health's `ray` component, or None when runs train locally."""
    addr = address()
    if addr is None:
        return None
    t0 = time.perf_counter()
    error = probe(addr)
    result: dict[str, Any] = {
        "status": "ok" if error is None else "degraded",
        "address": addr,
        "latency_ms": round((time.perf_counter() - t0) * 1000, 2),
    }
    if error is not None:
        result["error"] = unavailable_message(addr, error)
    return result
