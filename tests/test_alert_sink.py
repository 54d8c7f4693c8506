"""The alert sink records Alertmanager's webhook notifications; the delivery probe reads them."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from opsdrill import ports
from opsdrill.monitoring.alert_sink import make_server, read_lines
from opsdrill.probes.alertmanager import delivered, deliveries


def _notification(status: str, *alerts: tuple[str, str]) -> dict[str, object]:
    """The shape of Alertmanager's webhook payload (version 4), trimmed to what we read."""
    return {"version": "4", "status": status, "receiver": "ops-webhook",
            "alerts": [{"status": s, "labels": {"alertname": n, "severity": "critical"}}
                       for n, s in alerts]}  # fmt: skip


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    record = tmp_path / "received.jsonl"
    port = ports.free_port()
    server = make_server("127.0.0.1", port, record)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}", record
    finally:
        server.shutdown()
        server.server_close()


def test_a_notification_is_recorded_and_served(sink: tuple[str, Path]) -> None:
    url, record = sink
    before = time.time()
    resp = httpx.post(f"{url}/alerts", json=_notification("firing", ("ServiceDown", "firing")))
    assert resp.status_code == 200
    assert read_lines(record)[0]["notification"]["alerts"][0]["labels"]["alertname"] == (
        "ServiceDown"
    )
    assert len(deliveries(url)) == 1
    assert delivered(url, "ServiceDown", "firing", before)


def test_delivery_needs_the_name_the_state_and_a_fresh_notification(
    sink: tuple[str, Path],
) -> None:
    url, _ = sink
    httpx.post(f"{url}/alerts", json=_notification("firing", ("ServiceDown", "firing")))
    assert not delivered(url, "ServiceDown", "resolved", 0), "fired is not resolved"
    assert not delivered(url, "DatabaseDown", "firing", 0), "another alert"
    assert not delivered(url, "ServiceDown", "firing", time.time() + 1), "an older delivery"
    httpx.post(f"{url}/alerts", json=_notification("resolved", ("ServiceDown", "resolved")))
    assert delivered(url, "ServiceDown", "resolved", 0)


def test_a_body_that_is_not_json_is_refused_and_not_recorded(sink: tuple[str, Path]) -> None:
    url, record = sink
    resp = httpx.post(f"{url}/alerts", content=b"not json")
    assert resp.status_code == 400 and "not JSON" in resp.json()["error"]
    assert read_lines(record) == []
    assert httpx.get(f"{url}/-/ready").status_code == 200
