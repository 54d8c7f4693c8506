"""Real faults through the embedded Toxiproxy: an echo server behind a proxy, toxics added
with the published `toxiproxy-python` client, effects measured on the client socket."""

from __future__ import annotations

import socket
import statistics
import threading
import time
from collections.abc import Callable, Iterator

import pytest
import requests

from opsdrill.plugin.waiting import until
from opsdrill.toxiproxy import ToxiproxyServer

toxiproxy = pytest.importorskip("toxiproxy", reason="toxiproxy-python client not installed")

TOLERANCE = 0.08  # seconds of scheduling noise allowed on a loaded CI machine


@pytest.fixture(scope="module")
def echo_port() -> Iterator[int]:
    """A TCP echo server: each connection gets back what it sends, until it closes."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve(conn: socket.socket) -> None:
        with conn:
            try:
                while data := conn.recv(65536):
                    conn.sendall(data)
            except OSError:
                pass

    def accept() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    yield listener.getsockname()[1]
    listener.close()


@pytest.fixture(scope="module")
def server() -> Iterator[ToxiproxyServer]:
    with ToxiproxyServer() as srv:
        yield srv


@pytest.fixture
def proxy(server: ToxiproxyServer, echo_port: int) -> Iterator[toxiproxy.Proxy]:
    client = toxiproxy.Toxiproxy()
    client.update_api_consumer(server.host, server.port)
    created = client.create(upstream=f"127.0.0.1:{echo_port}", name="echo")
    yield created
    client.destroy_all()


@pytest.fixture
def connect(proxy: toxiproxy.Proxy) -> Iterator[Callable[[], socket.socket]]:
    """Open client connections through the proxy; all are closed after the test."""
    opened: list[socket.socket] = []
    port = int(proxy.listen.rsplit(":", 1)[1])

    def open_one() -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        opened.append(sock)
        return sock

    yield open_one
    for sock in opened:
        sock.close()


def round_trip(sock: socket.socket, payload: bytes = b"ping") -> float:
    """Seconds from send until the whole echo is back."""
    start = time.monotonic()
    sock.sendall(payload)
    received = b""
    while len(received) < len(payload):
        data = sock.recv(65536)
        assert data, "connection closed during round trip"
        received += data
    assert received == payload
    return time.monotonic() - start


def read_until_closed(sock: socket.socket) -> tuple[bytes, float]:
    """Everything received until EOF, and when EOF came (monotonic)."""
    received = b""
    while data := sock.recv(65536):
        received += data
    return received, time.monotonic()


def test_latency_added_to_open_connection_and_removed(proxy, connect):
    sock = connect()
    baseline = statistics.median(round_trip(sock) for _ in range(5))
    proxy.add_toxic(type="latency", attributes={"latency": 100})
    delayed = statistics.median(round_trip(sock) for _ in range(5))
    assert 0.100 <= delayed - baseline <= 0.100 + TOLERANCE
    proxy.add_toxic(type="latency", stream="upstream", attributes={"latency": 50})
    both = statistics.median(round_trip(sock) for _ in range(3))
    assert 0.150 <= both <= 0.150 + TOLERANCE
    proxy.destroy_toxic("latency_downstream")
    proxy.destroy_toxic("latency_upstream")
    assert round_trip(sock) < 0.05


def test_latency_is_per_chunk_not_cumulative(proxy, connect):
    proxy.add_toxic(type="latency", attributes={"latency": 100})
    sock = connect()
    start = time.monotonic()
    for i in range(5):
        sock.sendall(b"%d" % i)
        time.sleep(0.01)  # spacing, not waiting: makes five separate chunks 10 ms apart
    received = b""
    while len(received) < 5:
        received += sock.recv(100)
    assert received == b"01234"
    assert time.monotonic() - start < 0.300  # cumulative would be 0.5 s


def test_jitter_stays_within_bounds(proxy, connect):
    proxy.add_toxic(type="latency", attributes={"latency": 60, "jitter": 30})
    sock = connect()
    samples = [round_trip(sock) for _ in range(8)]
    assert min(samples) >= 0.030
    assert max(samples) <= 0.090 + TOLERANCE


def test_bandwidth_limits_throughput(proxy, connect):
    proxy.add_toxic(type="bandwidth", stream="upstream", attributes={"rate": 200})  # KB/s
    sock = connect()
    elapsed = round_trip(sock, b"x" * 60_000)  # 0.3 s at 200 KB/s
    assert 0.3 - TOLERANCE <= elapsed <= 0.3 + 2 * TOLERANCE


def test_timeout_zero_stops_data_and_removal_closes(proxy, connect):
    sock = connect()
    round_trip(sock)
    proxy.add_toxic(type="timeout", attributes={"timeout": 0})
    sock.settimeout(0.3)
    sock.sendall(b"lost")
    with pytest.raises(TimeoutError):
        sock.recv(100)
    sock.settimeout(5)
    proxy.destroy_toxic("timeout_downstream")  # as in Go, a timed-out link does not come back
    assert sock.recv(100) == b""


def test_timeout_closes_after_delay(proxy, connect):
    sock = connect()
    start = time.monotonic()  # the toxic's clock starts when it reaches the open link
    proxy.add_toxic(type="timeout", stream="upstream", attributes={"timeout": 200})
    sock.sendall(b"dropped")
    received, closed_at = read_until_closed(sock)
    assert received == b""
    assert 0.200 <= closed_at - start <= 0.200 + TOLERANCE


def test_reset_peer_gives_connection_reset(proxy, connect):
    proxy.add_toxic(type="reset_peer", stream="upstream", attributes={"timeout": 100})
    sock = connect()
    start = time.monotonic()
    sock.sendall(b"hello")
    with pytest.raises(ConnectionResetError):
        sock.recv(100)
    assert 0.100 <= time.monotonic() - start <= 0.100 + TOLERANCE


def test_limit_data_closes_after_n_bytes(proxy, connect):
    proxy.add_toxic(type="limit_data", attributes={"bytes": 10})
    sock = connect()
    sock.sendall(b"abcdefghijklmnopqrstuvwxyz")
    received, _ = read_until_closed(sock)
    assert received == b"abcdefghij"


def test_slicer_splits_writes(proxy, connect):
    proxy.add_toxic(
        type="slicer", attributes={"average_size": 10, "size_variation": 4, "delay": 5000}
    )
    sock = connect()
    payload = bytes(range(200))
    sock.sendall(payload)
    pieces: list[bytes] = []
    while sum(map(len, pieces)) < len(payload):
        pieces.append(sock.recv(65536))
    assert b"".join(pieces) == payload
    assert len(pieces) >= 10
    assert max(map(len, pieces)) <= 28  # a slow reader may see two slices at once


def test_slow_close_delays_close(proxy, connect):
    proxy.add_toxic(type="slow_close", attributes={"delay": 200})
    sock = connect()
    round_trip(sock)
    start = time.monotonic()
    sock.shutdown(socket.SHUT_WR)
    received, closed_at = read_until_closed(sock)
    assert received == b""
    assert 0.200 <= closed_at - start <= 0.200 + TOLERANCE


def test_toxicity_zero_never_applies(proxy, connect):
    proxy.add_toxic(type="timeout", toxicity=0.0, attributes={"timeout": 0})
    proxy.add_toxic(type="latency", stream="upstream", toxicity=0, attributes={"latency": 500})
    for _ in range(10):
        assert round_trip(connect()) < 0.1


def test_toxicity_is_per_connection(proxy, connect):
    proxy.add_toxic(type="latency", toxicity=0.5, attributes={"latency": 60})
    delayed = [round_trip(connect()) >= 0.06 for _ in range(40)]
    assert 5 <= sum(delayed) <= 35  # P(outside) < 1e-5


def accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def test_disable_closes_listener_and_connections(proxy, connect):
    sock = connect()
    round_trip(sock)
    port = int(proxy.listen.rsplit(":", 1)[1])
    with proxy.down():
        assert sock.recv(100) == b""
        assert not accepts(port)
    until(lambda: accepts(port), 5, f"port {port} accepting")
    assert round_trip(connect()) < 0.1


def test_reset_removes_toxics_and_reenables(server, proxy, connect):
    proxy.add_toxic(type="latency", attributes={"latency": 1000})
    proxy.disable()
    assert toxiproxy.Toxiproxy().reset()
    state = requests.get(f"{server.url}/proxies/echo").json()
    assert state["enabled"] is True and state["toxics"] == []
    assert round_trip(connect()) < 0.1


def test_upstream_down_closes_client(server, proxy):
    # `proxy`: its teardown (destroy_all) also removes the proxy made here
    requests.post(f"{server.url}/proxies", json={"name": "dead", "upstream": "127.0.0.1:1"})
    dead = requests.get(f"{server.url}/proxies/dead").json()
    port = int(dead["listen"].rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        assert sock.recv(100) == b""
