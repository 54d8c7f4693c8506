"""Just enough HTTP/1.1 for a JSON API on loopback: requests in, responses out, keep-alive.

Hand-written on asyncio streams so the API shares one event loop (and so one thread) with
the proxies it controls; no locks are needed anywhere.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from http import HTTPStatus
from urllib.parse import unquote, urlsplit

__all__ = ["BadRequest", "Request", "Response", "read_request", "write_response"]

MAX_BODY = 1 << 20
MAX_LINE = 8192


class BadRequest(Exception):
    """The bytes on the wire are not an HTTP request we can serve."""


@dataclass
class Request:
    method: str
    path: str
    version: str
    headers: dict[str, str]
    body: bytes = b""

    def header(self, name: str) -> str:
        return self.headers.get(name.lower(), "")

    @property
    def keep_alive(self) -> bool:
        connection = self.header("connection").lower()
        if self.version == "HTTP/1.0":
            return connection == "keep-alive"
        return connection != "close"


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, payload: object, status: int = 200) -> Response:
        return cls(status, json.dumps(payload, separators=(",", ":")).encode() + b"\n")  # as Go

    @classmethod
    def text(cls, text: str, status: int) -> Response:
        return cls(status, text.encode(), "text/plain; charset=utf-8")


async def _line(reader: asyncio.StreamReader) -> bytes:
    try:
        line = await reader.readuntil(b"\n")
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise BadRequest("truncated request") from exc
        return b""
    except asyncio.LimitOverrunError as exc:
        raise BadRequest("line too long") from exc
    if len(line) > MAX_LINE:
        raise BadRequest("line too long")
    return line


async def _body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    if "chunked" in headers.get("transfer-encoding", "").lower():
        parts: list[bytes] = []
        while size := int((await _line(reader)).split(b";")[0].strip() or b"0", 16):
            if sum(map(len, parts)) + size > MAX_BODY:
                raise BadRequest("body too large")
            parts.append(await reader.readexactly(size + 2))
        while (await _line(reader)).strip():  # trailers
            pass
        return b"".join(part[:-2] for part in parts)
    length = int(headers.get("content-length", "0") or "0")
    if not 0 <= length <= MAX_BODY:
        raise BadRequest("bad content length")
    return await reader.readexactly(length)


async def read_request(reader: asyncio.StreamReader) -> Request | None:
    """The next request on the connection, or None when the client closed it."""
    line = await _line(reader)
    if not line.strip():
        return None
    try:
        method, target, version = line.decode("latin-1").split()
    except ValueError as exc:
        raise BadRequest("malformed request line") from exc
    headers: dict[str, str] = {}
    while (header := await _line(reader)).strip():
        name, sep, value = header.decode("latin-1").partition(":")
        if not sep:
            raise BadRequest("malformed header")
        headers[name.strip().lower()] = value.strip()
    try:
        body = await _body(reader, headers)
    except (ValueError, asyncio.IncompleteReadError) as exc:
        raise BadRequest("malformed body") from exc
    path = unquote(urlsplit(target).path)
    return Request(method.upper(), path, version, headers, body)


async def write_response(
    writer: asyncio.StreamWriter, response: Response, *, keep_alive: bool
) -> None:
    reason = HTTPStatus(response.status).phrase
    lines = [f"HTTP/1.1 {response.status} {reason}"]
    headers = dict(response.headers)
    if response.status != 204:
        headers["Content-Type"] = response.content_type
        headers["Content-Length"] = str(len(response.body))
    headers["Connection"] = "keep-alive" if keep_alive else "close"
    lines += [f"{name}: {value}" for name, value in headers.items()]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    if response.status != 204:
        writer.write(response.body)
    await writer.drain()
