"""Maintenance mode (runbook §8.1.2): while `$NF_HOME/.maintenance` exists, every request
except /metrics answers 503 with the flag file's message. Checked per request (one stat),
so `ops maintenance on|off` takes effect at once without touching the app.
"""

from __future__ import annotations

from pathlib import Path

from starlette.responses import JSONResponse

__all__ = ["DEFAULT_MESSAGE", "EXEMPT_PATHS", "maintenance_response", "set_maintenance"]

DEFAULT_MESSAGE = "service under maintenance"
EXEMPT_PATHS = frozenset({"/metrics"})


def maintenance_response(flag: Path, path: str) -> JSONResponse | None:
    """The 503 answer while the flag exists, or None when serving normally."""
    if path in EXEMPT_PATHS or not flag.exists():
        return None
    try:
        message = flag.read_text(encoding="utf-8").strip() or DEFAULT_MESSAGE
    except OSError:
        message = DEFAULT_MESSAGE
    return JSONResponse(
        {"status": "maintenance", "message": message},
        status_code=503,
        headers={"Retry-After": "60"},
    )


def set_maintenance(flag: Path, on: bool, message: str | None = None) -> bool:
    """Create or remove the flag; return whether it existed before."""
    existed = flag.exists()
    if on:
        flag.parent.mkdir(parents=True, exist_ok=True)
        tmp = flag.with_name(flag.name + ".tmp")
        tmp.write_text((message or DEFAULT_MESSAGE) + "\n", encoding="utf-8")
        tmp.replace(flag)
    else:
        flag.unlink(missing_ok=True)
    return existed
