"""The toxics, one class each, with the attributes and behaviour of Shopify/toxiproxy 2.x.

A toxic sits in one direction of a connection (`upstream` = client→server, `downstream` =
server→client) and sees each chunk as it was read from the socket, or `None` for end of
stream. It passes chunks on with `emit`, holds them with `stub.sleep`, or ends the connection
with `stub.close`. Per-connection state lives on the stub, so one toxic serves every link.
`stub.sleep` returns False when the toxic is updated or removed meanwhile: the held data then
goes on at once, as the real server's interrupt does, so nothing is dropped.

Deliberate differences from the Go server: attribute values must be non-negative integers and
toxicity must lie in [0, 1] (Go accepts and then ignores nonsense), and removing a timeout toxic
closes only the connections it was actually applied to (Go closes all of them).
"""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from opsdrill.toxiproxy import errors

__all__ = [
    "TOXIC_TYPES",
    "Bandwidth",
    "Chunk",
    "Latency",
    "LimitData",
    "ResetPeer",
    "Slicer",
    "SlowClose",
    "Stub",
    "Timeout",
    "Toxic",
    "new_toxic",
]


@dataclass
class Chunk:
    """Bytes read in one go, stamped (monotonic) when read so latency is not cumulative."""

    data: bytes
    timestamp: float


Emit = Callable[[Chunk | None], Awaitable[None]]


class Stub(Protocol):
    """What a toxic may do to the one connection direction it is running on."""

    state: Any
    rng: random.Random

    async def sleep(self, seconds: float) -> bool: ...

    def close(self, *, reset: bool = False) -> None: ...

    def start_timer(self, seconds: float, callback: Callable[[], None]) -> None: ...


class Toxic:
    """Common fields and JSON of every toxic; subclasses define attributes and `pipe`."""

    type_name: ClassVar[str] = ""
    attribute_names: ClassVar[tuple[str, ...]] = ()

    def __init__(self, name: str, stream: str, toxicity: float) -> None:
        self.name = name
        self.stream = stream
        self.toxicity = toxicity
        for attr in self.attribute_names:
            setattr(self, attr, 0)

    @property
    def direction(self) -> str:
        return self.stream.lower()

    def attributes(self) -> dict[str, int]:
        return {attr: getattr(self, attr) for attr in self.attribute_names}

    def set_attributes(self, raw: object) -> None:
        """Update the attributes present in `raw` (partial updates keep the others)."""
        if raw is None:
            return
        if not isinstance(raw, dict):
            raise errors.bad_request_body("attributes must be a JSON object")
        given = {attr: raw[attr] for attr in self.attribute_names if attr in raw}
        for attr, value in given.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise errors.bad_request_body(
                    f"attribute {attr} of a {self.type_name} toxic must be a non-negative "
                    f"integer, got {value!r}"
                )
        for attr, value in given.items():
            setattr(self, attr, value)

    def to_json(self) -> dict[str, object]:
        return {
            "attributes": self.attributes(),
            "name": self.name,
            "type": self.type_name,
            "stream": self.stream,
            "toxicity": self.toxicity,
        }

    def new_state(self) -> Any:
        """Per-connection state, created when the toxic meets the connection."""
        return None

    def on_attach(self, stub: Stub) -> None:
        """Called when the toxic starts running on a connection (timers start here)."""

    def on_detach(self, stub: Stub) -> None:
        """Called when the toxic is removed while the connection is open."""

    async def pipe(self, chunk: Chunk | None, stub: Stub, emit: Emit) -> None:
        await emit(chunk)


class Latency(Toxic):
    """Delay each chunk by `latency` ± `jitter` ms, counted from when it was read."""

    type_name = "latency"
    attribute_names = ("latency", "jitter")
    latency: int
    jitter: int

    def delay_ms(self, rng: random.Random) -> int:
        if self.jitter > 0:
            return self.latency + rng.randrange(2 * self.jitter) - self.jitter
        return self.latency

    async def pipe(self, chunk: Chunk | None, stub: Stub, emit: Emit) -> None:
        if chunk is not None:
            wait = self.delay_ms(stub.rng) / 1000 - (time.monotonic() - chunk.timestamp)
            if wait > 0 and await stub.sleep(wait):
                chunk.timestamp += wait  # a second latency toxic adds on top
        await emit(chunk)


@dataclass
class _Pace:
    """When the bandwidth budget of one connection direction allows the next byte."""

    next_send: float = 0.0


class Bandwidth(Toxic):
    """Limit throughput to `rate` KB/s, sending at least every 100 ms like the Go toxic."""

    type_name = "bandwidth"
    attribute_names = ("rate",)
    rate: int

    def new_state(self) -> _Pace:
        return _Pace()

    async def pipe(self, chunk: Chunk | None, stub: Stub, emit: Emit) -> None:
        if chunk is None or self.rate <= 0:
            await emit(chunk)
            return
        step = self.rate * 100  # bytes per 100 ms
        data = chunk.data
        while data:
            piece, data = data[:step], data[step:]
            pace: _Pace = stub.state
            pace.next_send = max(pace.next_send, time.monotonic()) + len(piece) / (self.rate * 1000)
            if not await stub.sleep(pace.next_send - time.monotonic()):
                await emit(Chunk(piece + data, chunk.timestamp))
                return
            await emit(Chunk(piece, chunk.timestamp))


class SlowClose(Toxic):
    """Hold the close of the connection for `delay` ms after the peer closed."""

    type_name = "slow_close"
    attribute_names = ("delay",)
    delay: int

    async def pipe(self, chunk: Chunk | None, stub: Stub, emit: Emit) -> None:
        if chunk is None:
            await stub.sleep(self.delay / 1000)
        await emit(chunk)


class Timeout(Toxic):
    """Drop all data; close the connection after `timeout` ms (0: never, it just hangs)."""

    type_name = "timeout"
    attribute_names = ("timeout",)
    timeout: int

    def on_attach(self, stub: Stub) -> None:
        if self.timeout > 0:
            stub.start_timer(self.timeout / 1000, stub.close)

    def on_detach(self, stub: Stub) -> None:
        stub.close()  # as the Go toxic's Cleanup: a timed-out connection does not come back

    async def pipe(self, chunk: Chunk | None, stub: Stub, emit: Emit) -> None:
        if chunk is None:
            stub.close()


class ResetPeer(Toxic):
    """On the next data (or close), wait `timeout` ms, then reset both sockets (RST)."""

    type_name = "reset_peer"
    attribute_names = ("timeout",)
    timeout: int

    async def pipe(self, chunk: Chunk | None, stub: Stub, emit: Emit) -> None:
        if await stub.sleep(self.timeout / 1000):
            stub.close(reset=True)
        else:
            await emit(chunk)


@dataclass
class _Sent:
    bytes: int = 0


class LimitData(Toxic):
    """Close the connection once `bytes` bytes have passed in this direction."""

    type_name = "limit_data"
    attribute_names = ("bytes",)
    bytes: int

    def new_state(self) -> _Sent:
        return _Sent()

    async def pipe(self, chunk: Chunk | None, stub: Stub, emit: Emit) -> None:
        if chunk is None:
            stub.close()
            return
        sent: _Sent = stub.state
        allowed = chunk.data[: max(self.bytes - sent.bytes, 0)]
        if allowed:
            sent.bytes += len(allowed)
            await emit(Chunk(allowed, chunk.timestamp))
        if sent.bytes >= self.bytes:
            stub.close()


class Slicer(Toxic):
    """Cut each chunk into pieces of about `average_size` ± `size_variation` bytes, with
    `delay` µs between them, as TCP segmentation would."""

    type_name = "slicer"
    attribute_names = ("average_size", "size_variation", "delay")
    average_size: int
    size_variation: int
    delay: int

    def cut_points(self, start: int, end: int, rng: random.Random) -> list[int]:
        """Offsets of the pieces, halving recursively so no end gets the odd piece."""
        if self.average_size <= 0 or (end - start) - self.average_size <= self.size_variation:
            return [start, end]
        mid = start + (end - start) // 2
        if self.size_variation > 0:
            mid += rng.randrange(2 * self.size_variation) - self.size_variation
        mid = min(max(mid, start + 1), end - 1)  # Go loops forever or slices backwards here
        return self.cut_points(start, mid, rng) + self.cut_points(mid, end, rng)[1:]

    async def pipe(self, chunk: Chunk | None, stub: Stub, emit: Emit) -> None:
        if chunk is None:
            await emit(chunk)
            return
        points = self.cut_points(0, len(chunk.data), stub.rng)
        for left, right in itertools.pairwise(points):
            await emit(Chunk(chunk.data[left:right], chunk.timestamp))
            if right < len(chunk.data) and not await stub.sleep(self.delay / 1_000_000):
                await emit(Chunk(chunk.data[right:], chunk.timestamp))
                return


TOXIC_TYPES: dict[str, type[Toxic]] = {
    cls.type_name: cls
    for cls in (Latency, Bandwidth, SlowClose, Timeout, ResetPeer, LimitData, Slicer)
}


def _string_field(body: dict[str, Any], key: str, default: str) -> str:
    value = body.get(key, default)
    if value is None:
        return default
    if not isinstance(value, str):
        raise errors.bad_request_body(f"field {key} must be a string, got {value!r}")
    return value


def parse_toxicity(value: object) -> float:
    """A probability in [0, 1]; the share of connections the toxic is applied to."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise errors.bad_request_body(f"toxicity must be a number from 0 to 1, got {value!r}")
    return float(value)


def new_toxic(body: object) -> Toxic:
    """Build a toxic from a POST body, validating in the order the Go server does."""
    if not isinstance(body, dict):
        raise errors.bad_request_body("expected a JSON object")
    stream = _string_field(body, "stream", "downstream")
    if stream.lower() not in ("upstream", "downstream"):
        raise errors.invalid_stream()
    toxic_type = _string_field(body, "type", "")
    name = _string_field(body, "name", "") or f"{toxic_type}_{stream}"
    cls = TOXIC_TYPES.get(toxic_type)
    if cls is None:
        raise errors.invalid_toxic_type()
    toxicity = body.get("toxicity", 1.0)
    toxic = cls(name, stream, parse_toxicity(1.0 if toxicity is None else toxicity))
    toxic.set_attributes(body.get("attributes"))
    return toxic
