"""One direction of one proxied connection: socket → toxics → socket.

A reader task stamps each chunk with the time it was read and queues it (so latency is
measured per chunk, not accumulated); a pump task pushes chunks through the toxics in the
order they were added and writes what comes out. The chain is looked up per chunk, so a toxic
added, updated or removed through the API applies to the very next data of every open
connection, as in the real server.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable
from typing import Any, Protocol

from opsdrill.toxiproxy.toxics import Chunk, Toxic


class Connection(Protocol):
    """The connection a link belongs to (`proxy.Connection`): told when a direction ends."""

    def link_closed(self, link: Link, *, reset: bool) -> None: ...


__all__ = ["READ_SIZE", "Link", "ToxicStub"]

READ_SIZE = 32 * 1024  # Go's io.Copy buffer
QUEUE_CHUNKS = 1024  # Go's latency toxic buffer: how far reading may run ahead of writing


class ToxicStub:
    """One toxic on one link: whether toxicity picked it, its state, timers and interrupt."""

    def __init__(self, toxic: Toxic, link: Link, rng: random.Random) -> None:
        self.toxic = toxic
        self.link = link
        self.rng = rng
        self.state: Any = toxic.new_state()
        self.active = False
        self.detached = False
        self._interrupt = asyncio.Event()
        self._timers: list[asyncio.TimerHandle] = []

    def attach(self) -> None:
        """Roll toxicity (once per connection and update, like Go's ToxicStub.Run)."""
        self.active = self.rng.random() < self.toxic.toxicity
        if self.active:
            self.toxic.on_attach(self)

    def update(self) -> None:
        self.cancel_timers()
        self._wake()
        self.attach()

    def detach(self) -> None:
        self.detached = True
        self.cancel_timers()
        self._interrupt.set()  # for good: every later sleep returns at once
        if self.active and not self.link.closed:
            self.toxic.on_detach(self)

    async def sleep(self, seconds: float) -> bool:
        """Sleep; False if the toxic was updated or removed meanwhile (data goes on at once)."""
        if self.detached:
            return False
        if seconds <= 0:
            return True
        try:
            await asyncio.wait_for(self._interrupt.wait(), seconds)
        except TimeoutError:
            return True
        return False

    def close(self, *, reset: bool = False) -> None:
        self.link.close(reset=reset)

    def start_timer(self, seconds: float, callback: Callable[[], None]) -> None:
        self._timers.append(asyncio.get_running_loop().call_later(seconds, callback))

    def cancel_timers(self) -> None:
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()

    def _wake(self) -> None:
        self._interrupt.set()
        self._interrupt = asyncio.Event()


class Link:
    """Copies `reader` to `writer` through the toxics of one direction."""

    def __init__(
        self,
        connection: Connection,
        direction: str,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        toxics: list[Toxic],
        rng: random.Random,
    ) -> None:
        self.connection = connection
        self.direction = direction
        self.reader = reader
        self.writer = writer
        self.rng = rng
        self.closed = False
        self.stubs = [ToxicStub(toxic, self, rng) for toxic in toxics]
        self._queue: asyncio.Queue[Chunk | None] = asyncio.Queue(QUEUE_CHUNKS)
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        for stub in self.stubs:
            stub.attach()
        self._tasks = [asyncio.create_task(self._read()), asyncio.create_task(self._pump())]

    def add_toxic(self, toxic: Toxic) -> None:
        stub = ToxicStub(toxic, self, self.rng)
        self.stubs.append(stub)
        stub.attach()

    def update_toxic(self, toxic: Toxic) -> None:
        for stub in self.stubs:
            if stub.toxic is toxic:
                stub.update()

    def remove_toxic(self, toxic: Toxic) -> None:
        for stub in [s for s in self.stubs if s.toxic is toxic]:
            self.stubs.remove(stub)
            stub.detach()

    def close(self, *, reset: bool = False) -> None:
        """End this direction; the connection closes (or resets) the sockets."""
        if self.closed:
            return
        self.closed = True
        for stub in self.stubs:
            stub.cancel_timers()
        current = asyncio.current_task()
        for task in self._tasks:
            if task is not current:
                task.cancel()
        self.connection.link_closed(self, reset=reset)

    async def _read(self) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await self.reader.read(READ_SIZE):
                await self._queue.put(Chunk(data, time.monotonic()))
        await self._queue.put(None)

    async def _pump(self) -> None:
        while not self.closed:
            chunk = await self._queue.get()
            await self._push(chunk, list(self.stubs), 0)
            if chunk is None:
                return

    async def _push(self, chunk: Chunk | None, chain: list[ToxicStub], index: int) -> None:
        if self.closed:
            return
        while index < len(chain) and (chain[index].detached or not chain[index].active):
            index += 1
        if index == len(chain):
            await self._deliver(chunk)
            return
        stub = chain[index]

        async def emit(out: Chunk | None) -> None:
            await self._push(out, chain, index + 1)

        await stub.toxic.pipe(chunk, stub, emit)

    async def _deliver(self, chunk: Chunk | None) -> None:
        if chunk is None:
            self.close()
            return
        try:
            self.writer.write(chunk.data)
            await self.writer.drain()
        except (ConnectionError, OSError):
            self.close()
