"""A proxy: a loopback listener that forwards each client to the upstream through toxics."""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct

from opsdrill.toxiproxy.addresses import format_host_port, parse_loopback
from opsdrill.toxiproxy.errors import ApiError
from opsdrill.toxiproxy.link import Link
from opsdrill.toxiproxy.toxic_collection import ToxicCollection

__all__ = ["DEFAULT_LISTEN", "Connection", "Proxy", "normalize_listen"]

# Go would listen on all interfaces when `listen` is missing; loopback only here.
DEFAULT_LISTEN = "127.0.0.1:0"
_LINGER_ZERO = struct.pack("ii", 1, 0)  # close() then sends RST instead of FIN


def normalize_listen(listen: str) -> str:
    """The address as the listener will report it (`localhost` → 127.0.0.1)."""
    address = parse_loopback(listen, "listen")
    return format_host_port(address.resolved_host(), address.port)


class Connection:
    """One client and its upstream socket, joined by an upstream and a downstream link."""

    def __init__(
        self,
        proxy: Proxy,
        client: tuple[asyncio.StreamReader, asyncio.StreamWriter],
        server: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    ) -> None:
        self.proxy = proxy
        self.writers = (client[1], server[1])
        chains = proxy.toxics
        self.links = (
            Link(self, "upstream", client[0], server[1], chains.chain("upstream"), proxy.rng),
            Link(self, "downstream", server[0], client[1], chains.chain("downstream"), proxy.rng),
        )
        self._reset = False

    def start(self) -> None:
        self.proxy.connections.add(self)
        for link in self.links:
            self.proxy.toxics.links.add(link)
            link.start()

    def close(self) -> None:
        """Close both sockets normally (proxy disabled or deleted)."""
        for link in self.links:
            link.close()

    def link_closed(self, link: Link, *, reset: bool) -> None:
        """A direction ended: close its destination, or reset both sockets."""
        if reset and not self._reset:
            self._reset = True
            for writer in self.writers:
                sock = writer.get_extra_info("socket")
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ZERO)
                writer.transport.abort()
            for other in self.links:
                other.close()
        elif not self._reset:
            link.writer.close()
        if all(each.closed for each in self.links):
            self.proxy.connections.discard(self)
            self.proxy.toxics.links.difference_update(self.links)


class Proxy:
    """Listens on `listen` while enabled; each accepted client gets its own Connection."""

    def __init__(self, name: str, listen: str, upstream: str, rng: random.Random) -> None:
        normalize_listen(listen)
        parse_loopback(upstream, "upstream")
        self.name = name
        self.listen = listen
        self.upstream = upstream
        self.enabled = False
        self.rng = rng
        self.toxics = ToxicCollection()
        self.connections: set[Connection] = set()
        self._server: asyncio.Server | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "listen": self.listen,
            "upstream": self.upstream,
            "enabled": self.enabled,
            "toxics": self.toxics.to_json(),
        }

    def differs(self, listen: str, upstream: str) -> bool:
        """Go's Proxy.Differs: a change of address restarts the proxy."""
        return normalize_listen(listen) != self.listen or upstream != self.upstream

    async def start(self) -> None:
        """Listen; a port of 0 is replaced by the port the kernel picked."""
        if self.enabled:
            return
        address = parse_loopback(self.listen, "listen")
        host = address.resolved_host()
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, address.port))
            self._server = await asyncio.start_server(self._accept, sock=sock)
        except OSError as exc:
            sock.close()
            reason = (exc.strerror or str(exc)).lower()
            raise ApiError(f"listen tcp {address}: bind: {reason}", 500) from exc
        self.listen = format_host_port(host, sock.getsockname()[1])
        self.enabled = True

    def stop(self) -> None:
        """Stop listening and close every open connection."""
        if not self.enabled:
            return
        self.enabled = False
        if self._server is not None:
            self._server.close()
            self._server = None
        for connection in list(self.connections):
            connection.close()

    async def update(self, listen: str, upstream: str, enabled: bool) -> None:
        """Go's Proxy.Update: restart on a new address, then apply `enabled`."""
        parse_loopback(upstream, "upstream")
        if self.differs(listen, upstream):
            self.stop()
            self.listen = normalize_listen(listen)
            self.upstream = upstream
        if enabled and not self.enabled:
            await self.start()
        elif not enabled:
            self.stop()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream = parse_loopback(self.upstream, "upstream")
        try:
            server = await asyncio.open_connection(upstream.host, upstream.port)
        except OSError:
            writer.close()  # as Go: the client sees its connection closed
            return
        if not self.enabled:
            writer.close()
            server[1].close()
            return
        Connection(self, (reader, writer), server).start()
