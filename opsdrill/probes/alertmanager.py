"""Alert delivery probes: did Alertmanager's notification reach the receiver (the alert sink)?"""

from __future__ import annotations

from typing import Any

import httpx

__all__ = ["delivered", "deliveries"]


def deliveries(sink_url: str, timeout: float = 1.0) -> list[dict[str, Any]]:
    """Every notification the sink has recorded: {"received_at", "notification"} each."""
    resp = httpx.get(f"{sink_url}/received", timeout=timeout)
    resp.raise_for_status()
    return list(resp.json())


def delivered(sink_url: str, alertname: str, status: str, since: float) -> bool:
    """True once a notification received after `since` (unix time) carries `alertname` with
    `status` ("firing" or "resolved")."""
    return any(
        d["received_at"] >= since
        and any(
            a.get("status") == status and a.get("labels", {}).get("alertname") == alertname
            for a in d["notification"].get("alerts", [])
        )
        for d in deliveries(sink_url)
    )
