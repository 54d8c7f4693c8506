"""The server: the HTTP API on a loopback port, in asyncio or in a background thread.

`ApiServer` is the asyncio core (`await start()`, `await close()`); `ToxiproxyServer` runs one
in a thread with its own event loop so synchronous code (pytest, drills) can use it:

    with ToxiproxyServer() as server:        # port 0: a free port
        toxiproxy.Toxiproxy().update_api_consumer(server.host, server.port)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import threading
from types import TracebackType

from opsdrill.toxiproxy.addresses import LOOPBACK_HINT, format_host_port, is_loopback_host
from opsdrill.toxiproxy.api import dispatch
from opsdrill.toxiproxy.errors import ListenFailed, NotLoopback
from opsdrill.toxiproxy.http_io import BadRequest, Response, read_request, write_response
from opsdrill.toxiproxy.proxy_collection import ProxyCollection

__all__ = ["ApiServer", "ToxiproxyServer"]

log = logging.getLogger(__name__)


def check_loopback(host: str) -> str:
    """The literal IP to bind for `host`, or NotLoopback."""
    if not is_loopback_host(host):
        raise NotLoopback(
            f"--host {host} is not loopback; the embedded Toxiproxy only listens on loopback, "
            f"{LOOPBACK_HINT}"
        )
    return "127.0.0.1" if host.lower() == "localhost" else host


class ApiServer:
    """Toxiproxy's HTTP API and the proxies it controls, all on the running event loop."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, seed: int | None = None) -> None:
        self.host = check_loopback(host)
        self.port = port
        self.proxies = ProxyCollection(random.Random(seed))
        self._server: asyncio.Server | None = None
        self._clients: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"http://{format_host_port(self.host, self.port)}"

    async def start(self) -> None:
        """Bind the API port; ListenFailed with the reason if it cannot."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
            self._server = await asyncio.start_server(self._serve, sock=sock)
        except OSError as exc:
            sock.close()
            where = format_host_port(self.host, self.port)
            raise ListenFailed(
                f"cannot listen on {where}: {exc.strerror or exc}; stop whatever holds the port "
                f"or choose another (--port 0 picks a free one)"
            ) from exc
        self.port = sock.getsockname()[1]

    async def close(self) -> None:
        """Stop the API and every proxy; all sockets are closed when this returns."""
        if self._server is not None:
            self._server.close()
            self._server = None
        self.proxies.close()
        for writer in list(self._clients):
            writer.close()
        await asyncio.sleep(0)  # let transports run their connection_lost callbacks

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._clients.add(writer)
        try:
            while True:
                try:
                    request = await read_request(reader)
                except BadRequest as exc:
                    await write_response(writer, Response.text(f"{exc}\n", 400), keep_alive=False)
                    return
                if request is None:
                    return
                response = await dispatch(self.proxies, request)
                await write_response(writer, response, keep_alive=request.keep_alive)
                if not request.keep_alive:
                    return
        except (ConnectionError, OSError):
            return
        finally:
            self._clients.discard(writer)
            writer.close()


class ToxiproxyServer:
    """An ApiServer in a daemon thread with its own event loop, for synchronous callers."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, seed: int | None = None) -> None:
        self._api = ApiServer(host, port, seed)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def host(self) -> str:
        return self._api.host

    @property
    def port(self) -> int:
        return self._api.port

    @property
    def url(self) -> str:
        return self._api.url

    def start(self) -> ToxiproxyServer:
        """Listen and serve in the background; raises ListenFailed if the port is taken."""
        if self._thread is not None:
            return self
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="toxiproxy", daemon=True)
        thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self._api.start(), loop).result()
        except BaseException:
            loop.call_soon_threadsafe(loop.stop)
            thread.join()
            loop.close()
            raise
        self._loop, self._thread = loop, thread
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Close the API, proxies and connections, then end the thread; safe to call twice."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        self._loop = self._thread = None
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(timeout)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        if not thread.is_alive():
            loop.close()

    async def _shutdown(self) -> None:
        """Close everything, then end the tasks left on this private loop (link pumps)."""
        await self._api.close()
        others = asyncio.all_tasks() - {asyncio.current_task()}
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)

    def __enter__(self) -> ToxiproxyServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
