"""Network faults against an embedded Toxiproxy and a loopback echo server (no stack needed)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from opsdrill.errors import FaultNotEffective
from opsdrill.faults.journal import Journal
from opsdrill.faults.network import Latency, ResetPeer, toxics_on
from opsdrill.targets.local import LocalTarget
from opsdrill.toxiproxy import ToxiproxyServer

pytest.importorskip("toxiproxy", reason="toxiproxy-python client not installed")


@pytest.fixture
def echo_port() -> Iterator[int]:
    srv = socket.create_server(("127.0.0.1", 0))
    srv.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except TimeoutError:
                continue
            with conn, contextlib.suppress(OSError):  # a reset connection: serve the next
                while data := conn.recv(4096):
                    conn.sendall(data)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield srv.getsockname()[1]
    stop.set()
    thread.join(2)
    srv.close()


@pytest.fixture
def proxied(
    tmp_path: Path, echo_port: int, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[LocalTarget, int]]:
    server = ToxiproxyServer("127.0.0.1", 0)
    server.start()
    monkeypatch.setenv("OPSDRILL_TOXIPROXY_URL", server.url)
    from toxiproxy import Toxiproxy

    client = Toxiproxy()
    client.update_api_consumer("127.0.0.1", server.port)
    client.create(upstream=f"127.0.0.1:{echo_port}", name="postgres", listen="127.0.0.1:0")
    listen = client.get_proxy("postgres").listen
    try:
        yield LocalTarget(tmp_path, proxy=True, worker_cgroup=False), int(listen.split(":")[1])
    finally:
        server.stop()


def _round_trip(port: int) -> float:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        t0 = time.perf_counter()
        sock.sendall(b"ping")
        assert sock.recv(16) == b"ping"
        return time.perf_counter() - t0


def test_latency_is_measured_as_configured_and_reverted(proxied: tuple[LocalTarget, int]) -> None:
    target, port = proxied
    base = min(_round_trip(port) for _ in range(3))
    with Latency(target, proxy="postgres", latency=200) as fault:
        added = min(_round_trip(port) for _ in range(3)) - base
        assert fault.entry.undo["toxic"] in toxics_on(target.toxiproxy_url or "", "postgres")
        assert Journal(target.state_dir).entries()
    assert 0.18 <= added <= 0.4, f"measured +{added * 1000:.0f} ms for 200 ms"
    assert toxics_on(target.toxiproxy_url or "", "postgres") == []
    assert Journal(target.state_dir).entries() == []
    assert _round_trip(port) < base + 0.1


def test_reset_peer_resets_and_a_missing_proxy_is_refused(
    proxied: tuple[LocalTarget, int],
) -> None:
    target, port = proxied
    with ResetPeer(target, proxy="postgres", timeout=0), pytest.raises(OSError):
        _round_trip(port)
    assert _round_trip(port) < 1.0
    with pytest.raises(FaultNotEffective, match="no proxy 'nope': use one of postgres, api"):
        Latency(target, proxy="nope").__enter__()
    assert Journal(target.state_dir).entries() == []
