"""The Ray cluster: its alive nodes from the dashboard, and `ray status` from the CLI.

Target-neutral, so checks, drills and procedures ask it (the embedded stack's specs too).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import httpx

__all__ = ["Node", "RayStatus", "alive_nodes", "ray_status"]


class Node(NamedTuple):
    node_id: str
    cpus: float


class RayStatus(NamedTuple):
    """What `ray status` prints: the active nodes and the cluster's CPUs (used, total)."""

    active: int
    cpus_used: float
    cpus_total: float
    text: str


def alive_nodes(dashboard_url: str, timeout: float = 2.0) -> list[Node] | None:
    """The cluster's alive nodes from the dashboard; None if it does not answer."""
    try:
        reply = httpx.get(f"{dashboard_url}/nodes?view=summary", timeout=timeout)
        summary = reply.json()["data"]["summary"]
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        return None
    raylets = [node.get("raylet", {}) for node in summary]
    return [
        Node(str(r.get("nodeId")), float(r.get("resourcesTotal", {}).get("CPU", 0)))
        for r in raylets
        if r.get("state") == "ALIVE"
    ]


def parse_status(text: str) -> RayStatus | None:
    """`ray status` output -> active nodes and CPUs; None when it has no node section."""
    if "Active:" not in text:
        return None
    section = text.split("Active:", 1)[1].split("Pending:", 1)[0]
    active = len(re.findall(r"^\s*\d+\s+node_", section, flags=re.MULTILINE))
    cpu = re.search(r"([\d.]+)/([\d.]+) CPU", text)
    used, total = (float(cpu.group(1)), float(cpu.group(2))) if cpu else (0.0, 0.0)
    return RayStatus(active, used, total, text)


def ray_status(gcs_address: str, timeout: float = 60.0) -> RayStatus | None:
    """`ray status --address=GCS` (runbook §7.2.1), parsed; None when it fails."""
    ray = Path(sys.executable).parent / "ray"
    try:
        done = subprocess.run([str(ray), "status", f"--address={gcs_address}"],
                              capture_output=True, text=True, timeout=timeout)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return None
    return parse_status(done.stdout) if done.returncode == 0 else None
