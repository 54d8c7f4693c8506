"""The embedded Toxiproxy's HTTP API: shapes, defaults, status codes and error bodies as the
Go server's, driven through the published `toxiproxy-python` client and raw HTTP."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
import requests

from opsdrill.toxiproxy import ListenFailed, NotLoopback, ToxiproxyServer

toxiproxy = pytest.importorskip("toxiproxy", reason="toxiproxy-python client not installed")


@pytest.fixture
def server() -> Iterator[ToxiproxyServer]:
    with ToxiproxyServer() as srv:
        yield srv


@pytest.fixture
def client(server: ToxiproxyServer) -> toxiproxy.Toxiproxy:
    tp = toxiproxy.Toxiproxy()
    tp.update_api_consumer(server.host, server.port)  # class attributes: global to the process
    return tp


def body(response: requests.Response) -> object:
    return json.loads(response.content)


def test_create_and_list_through_client(client: toxiproxy.Toxiproxy, server: ToxiproxyServer):
    proxy = client.create(upstream="127.0.0.1:5432", name="db", listen="localhost:0")
    host, port = proxy.listen.rsplit(":", 1)
    assert host == "127.0.0.1" and int(port) > 0
    assert proxy.enabled is True
    assert set(client.proxies()) == {"db"}
    shown = requests.get(f"{server.url}/proxies/db").json()
    assert shown == {
        "name": "db",
        "listen": proxy.listen,
        "upstream": "127.0.0.1:5432",
        "enabled": True,
        "toxics": [],
    }
    assert client.version() == b'{"version": "2.12.0"}\n'
    assert client.running()


def test_create_status_and_conflict(server: ToxiproxyServer):
    spec = {"name": "db", "upstream": "127.0.0.1:5432", "listen": "127.0.0.1:0"}
    first = requests.post(f"{server.url}/proxies", json=spec)
    assert first.status_code == 201
    again = requests.post(f"{server.url}/proxies", json=spec)
    assert again.status_code == 409
    assert again.content == b'{"error":"proxy already exists","status":409}\n'


def test_not_found_bodies(server: ToxiproxyServer):
    for method, path in [
        ("GET", "/proxies/nope"),
        ("DELETE", "/proxies/nope"),
        ("GET", "/proxies/nope/toxics"),
        ("POST", "/proxies/nope/toxics"),
    ]:
        response = requests.request(method, server.url + path, json={})
        assert response.status_code == 404
        assert body(response) == {"error": "proxy not found", "status": 404}
    requests.post(f"{server.url}/proxies", json={"name": "p", "upstream": "127.0.0.1:1"})
    response = requests.get(f"{server.url}/proxies/p/toxics/nope")
    assert (response.status_code, body(response)) == (
        404,
        {"error": "toxic not found", "status": 404},
    )
    assert requests.get(f"{server.url}/nothing").status_code == 404
    assert requests.put(f"{server.url}/proxies/p").status_code == 405


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"upstream": "127.0.0.1:1"}, "missing required field: name"),
        ({"name": "p"}, "missing required field: upstream"),
        ({"name": 3, "upstream": "127.0.0.1:1"}, "bad request body: field name must be"),
        ({"name": "p", "upstream": "127.0.0.1"}, "invalid upstream address"),
    ],
)
def test_bad_proxy_input_is_400(server: ToxiproxyServer, spec: dict, message: str):
    response = requests.post(f"{server.url}/proxies", json=spec)
    assert response.status_code == 400
    assert body(response)["error"].startswith(message)
    assert body(response)["status"] == 400


def test_bad_json_is_400(server: ToxiproxyServer):
    response = requests.post(f"{server.url}/proxies", data=b"{not json")
    assert response.status_code == 400
    assert body(response)["error"].startswith("bad request body")


@pytest.mark.parametrize(
    ("field", "address"),
    [
        ("upstream", "10.1.2.3:5432"),
        ("upstream", "db.example.com:5432"),
        ("listen", "0.0.0.0:0"),
        ("listen", ":8080"),
        ("listen", "[::]:0"),
        ("listen", "192.168.1.1:0"),
    ],
)
def test_non_loopback_refused(server: ToxiproxyServer, field: str, address: str):
    spec = {"name": "p", "upstream": "127.0.0.1:1", "listen": "127.0.0.1:0", field: address}
    response = requests.post(f"{server.url}/proxies", json=spec)
    assert response.status_code == 400
    assert "not loopback" in body(response)["error"]
    assert requests.get(f"{server.url}/proxies").json() == {}
    requests.post(f"{server.url}/proxies", json={**spec, field: "127.0.0.1:1"})
    update = requests.post(f"{server.url}/proxies/p", json={field: address})
    assert update.status_code == 400


def test_loopback_forms_accepted(server: ToxiproxyServer):
    for i, upstream in enumerate(["127.0.0.2:1", "localhost:1", "[::1]:1"]):
        response = requests.post(
            f"{server.url}/proxies", json={"name": f"p{i}", "upstream": upstream}
        )
        assert response.status_code == 201, response.text
        assert body(response)["listen"].startswith("127.0.0.1:")


def test_toxic_defaults_and_errors(client: toxiproxy.Toxiproxy, server: ToxiproxyServer):
    proxy = client.create(upstream="127.0.0.1:1", name="p")
    url = f"{server.url}/proxies/p/toxics"
    created = requests.post(url, json={"type": "latency", "attributes": {"latency": 50}})
    assert created.status_code == 200  # the Go server answers 200, not 201
    assert body(created) == {
        "attributes": {"latency": 50, "jitter": 0},
        "name": "latency_downstream",
        "type": "latency",
        "stream": "downstream",
        "toxicity": 1.0,
    }
    proxy.add_toxic(type="timeout", stream="upstream", toxicity=0.5)
    assert [t["name"] for t in requests.get(url).json()] == [
        "timeout_upstream",  # upstream chain is listed first
        "latency_downstream",
    ]
    assert proxy.get_toxic("timeout_upstream").attributes == {"timeout": 0}
    again = requests.post(url, json={"type": "latency"})
    assert (again.status_code, body(again)) == (
        409,
        {"error": "toxic already exists", "status": 409},
    )
    bad_stream = requests.post(url, json={"type": "latency", "stream": "sideways"})
    assert body(bad_stream) == {
        "error": "stream was invalid, can be either upstream or downstream",
        "status": 400,
    }
    bad_type = requests.post(url, json={"type": "gremlin"})
    assert body(bad_type) == {"error": "invalid toxic type", "status": 400}
    bad_attr = requests.post(url, json={"type": "bandwidth", "attributes": {"rate": "fast"}})
    assert bad_attr.status_code == 400
    with pytest.raises(toxiproxy.exceptions.InvalidToxic):
        proxy.add_toxic(type="slicer", toxicity=2)


def test_toxic_update_and_delete(client: toxiproxy.Toxiproxy, server: ToxiproxyServer):
    proxy = client.create(upstream="127.0.0.1:1", name="p")
    proxy.add_toxic(type="slicer", attributes={"average_size": 64, "delay": 10})
    url = f"{server.url}/proxies/p/toxics/slicer_downstream"
    updated = requests.patch(url, json={"attributes": {"delay": 20}, "toxicity": 0.25})
    assert updated.status_code == 200
    assert body(updated)["attributes"] == {"average_size": 64, "size_variation": 0, "delay": 20}
    assert body(updated)["toxicity"] == 0.25
    assert requests.post(url, json={"attributes": {"delay": 30}}).json()["toxicity"] == 0.25
    assert proxy.destroy_toxic("slicer_downstream")
    assert requests.delete(url).status_code == 404
    assert requests.delete(f"{server.url}/proxies/p").status_code == 204
    assert client.proxies() == {}


def test_populate_creates_keeps_and_replaces(server: ToxiproxyServer):
    url = f"{server.url}/populate"
    first = requests.post(url, json=[{"name": "a", "upstream": "127.0.0.1:1"}])
    assert first.status_code == 201
    (created,) = body(first)["proxies"]
    requests.post(f"{server.url}/proxies/a/toxics", json={"type": "latency"})
    same = requests.post(
        url, json=[{"name": "a", "upstream": "127.0.0.1:1", "listen": created["listen"]}]
    )
    (kept,) = body(same)["proxies"]
    assert kept["toxics"] != []  # unchanged addresses: left alone
    changed = requests.post(
        url,
        json=[
            {"name": "a", "upstream": "127.0.0.1:2", "listen": created["listen"]},
            {"name": "b", "upstream": "127.0.0.1:3", "enabled": False},
        ],
    )
    replaced, disabled = body(changed)["proxies"]
    assert replaced["upstream"] == "127.0.0.1:2" and replaced["toxics"] == []
    assert replaced["listen"] == created["listen"]
    assert disabled["enabled"] is False
    missing = requests.post(url, json=[{"name": "c", "upstream": "127.0.0.1:1"}, {"name": "d"}])
    assert missing.status_code == 400
    assert body(missing) == {
        "error": "missing required field: upstream at proxy 2",
        "status": 400,
        "proxies": None,
    }
    remote = requests.post(url, json=[{"name": "e", "upstream": "8.8.8.8:53"}])
    assert remote.status_code == 400
    assert set(requests.get(f"{server.url}/proxies").json()) == {"a", "b"}


def test_listen_port_taken_is_500(server: ToxiproxyServer):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        response = requests.post(
            f"{server.url}/proxies",
            json={"name": "p", "upstream": "127.0.0.1:1", "listen": f"127.0.0.1:{taken}"},
        )
    assert response.status_code == 500
    assert "address already in use" in body(response)["error"]


def test_browser_user_agent_refused(server: ToxiproxyServer):
    response = requests.get(f"{server.url}/proxies", headers={"User-Agent": "Mozilla/5.0"})
    assert response.status_code == 403


def test_library_refuses_non_loopback_and_taken_port(server: ToxiproxyServer):
    with pytest.raises(NotLoopback, match="not loopback"):
        ToxiproxyServer(host="0.0.0.0")
    with pytest.raises(ListenFailed, match=r"cannot listen on 127\.0\.0\.1"):
        ToxiproxyServer(port=server.port).start()


def test_stop_closes_proxies(client: toxiproxy.Toxiproxy):
    with ToxiproxyServer() as other:
        proxy = requests.post(
            f"{other.url}/proxies", json={"name": "p", "upstream": "127.0.0.1:1"}
        ).json()
    port = int(proxy["listen"].rsplit(":", 1)[1])
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{other.url}/version", timeout=1)


def test_cli_serves_and_refuses_taken_port(server: ToxiproxyServer):
    cmd = [sys.executable, "-m", "opsdrill.toxiproxy", "--host", "127.0.0.1"]
    taken = subprocess.run([*cmd, "--port", str(server.port)], capture_output=True, text=True)
    assert taken.returncode != 0
    assert taken.stderr.strip().count("\n") == 0
    assert f"cannot listen on 127.0.0.1:{server.port}" in taken.stderr
    remote = subprocess.run([*cmd[:-1], "0.0.0.0"], capture_output=True, text=True)
    assert remote.returncode != 0 and "not loopback" in remote.stderr
    with subprocess.Popen([*cmd, "--port", "0"], stdout=subprocess.PIPE, text=True) as proc:
        try:
            line = proc.stdout.readline()
            url = line.split()[-1]
            assert requests.get(f"{url}/version", timeout=5).json() == {"version": "2.12.0"}
        finally:
            proc.terminate()
        assert proc.wait(timeout=5) == 0
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            requests.get(f"{url}/version", timeout=1)
        except requests.ConnectionError:
            break
    else:
        pytest.fail("the CLI server still answers after SIGTERM")
