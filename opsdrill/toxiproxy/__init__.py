"""An embedded server speaking Toxiproxy's HTTP API (Shopify/toxiproxy 2.x), pure asyncio.

For machines without a `toxiproxy-server` binary: chaos drills put real network faults
(latency, bandwidth, timeouts, resets, ...) between the app and PostgreSQL and between clients
and the app, through the same API and clients as real Toxiproxy. Loopback only, always.

    from opsdrill.toxiproxy import ToxiproxyServer
    with ToxiproxyServer(port=0) as server:   # server.url, server.port
        ...

Quirks of the published `toxiproxy-python` client (0.1.1, 2019) that this server does not
copy, so that it stays identical to the real server:

- `Toxiproxy.populate()` does not call POST /populate; it lists, deletes and recreates
  proxies itself, comparing `listen` literally, so "127.0.0.1:0" always recreates.
- `Toxiproxy.create()` lists proxies first and raises ProxyExists itself; a 500 from the
  server (listen port taken) is not raised but fails later as KeyError('name').
- Any 400 becomes `InvalidToxic`, even for proxy errors; exceptions carry raw bytes.
- `Proxy.add_toxic()` returns None (the created toxic is discarded); `destroy*()` return
  bool(response), True for every status below 400.
- `Proxy.enable()/disable()` POST to /proxies/{name}: deprecated in 2.6 for PATCH, still
  served (both are).
- `Toxiproxy.version()` returns the raw body bytes `{"version": "2.12.0"}\\n`.
- Host and port are class attributes of `APIConsumer`: `update_api_consumer(host, port)`
  repoints every client in the process; `running()` probes IPv4 only.

Differences from the Go server, deliberate: any address off loopback is refused (400); a
missing `listen` means 127.0.0.1:0 (Go: all interfaces); toxic attributes must be
non-negative integers and toxicity in [0, 1] (400 otherwise); reset_peer resets (RST) also
when added to an open connection (Go: a plain close then); removing a timeout toxic closes
only the connections it applied to; error bodies are served as application/json (Go:
text/plain). Not served: /metrics.
"""

from opsdrill.toxiproxy.errors import ApiError, ListenFailed, NotLoopback
from opsdrill.toxiproxy.server import ApiServer, ToxiproxyServer

__all__ = ["ApiError", "ApiServer", "ListenFailed", "NotLoopback", "ToxiproxyServer"]
