"""Errors of the embedded Toxiproxy server, in one place.

    ApiError                      an HTTP API failure; rendered as {"error": ..., "status": ...}
    opsdrill.errors.UsageError
    └── NotLoopback               a listen/upstream/API address off loopback (project safety rule)
    opsdrill.errors.ServiceError
    └── ListenFailed              the API port could not be bound (taken, no permission)

The API error messages and status codes are those of Shopify/toxiproxy 2.x (`api.go`), so that
clients which match on them keep working.
"""

from __future__ import annotations

from opsdrill.errors import ServiceError, UsageError

__all__ = [
    "ApiError",
    "ListenFailed",
    "NotLoopback",
    "bad_request_body",
    "invalid_stream",
    "invalid_toxic_type",
    "missing_field",
    "proxy_already_exists",
    "proxy_not_found",
    "toxic_already_exists",
    "toxic_not_found",
]


class ApiError(Exception):
    """An API failure with the HTTP status the real server uses for it."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.message = message
        self.status = status

    def to_json(self) -> dict[str, object]:
        return {"error": self.message, "status": self.status}


class NotLoopback(UsageError):
    """An address that is not on loopback; opsdrill never proxies traffic off this machine."""


class ListenFailed(ServiceError):
    """The API server could not listen on the requested address."""


def bad_request_body(detail: str) -> ApiError:
    return ApiError(f"bad request body: {detail}", 400)


def missing_field(field: str) -> ApiError:
    return ApiError(f"missing required field: {field}", 400)


def proxy_not_found() -> ApiError:
    return ApiError("proxy not found", 404)


def proxy_already_exists() -> ApiError:
    return ApiError("proxy already exists", 409)


def invalid_stream() -> ApiError:
    return ApiError("stream was invalid, can be either upstream or downstream", 400)


def invalid_toxic_type() -> ApiError:
    return ApiError("invalid toxic type", 400)


def toxic_already_exists() -> ApiError:
    return ApiError("toxic already exists", 409)


def toxic_not_found() -> ApiError:
    return ApiError("toxic not found", 404)
