"""Runbook §5.2.1: the app will not start because another process holds its port.

Diagnosis the runbook's way, without its guesswork: the holder's pid comes from the socket's
inode (/proc/net/tcp -> /proc/<pid>/fd) where the app binds its port (this machine, the
compose stack's shared network namespace, a host), never from a process name; the port is
freed by that pid and the app restarted by §5.3.1.
"""

from __future__ import annotations

import pytest

from opsdrill.drill import Detector
from opsdrill.drill.standard import StandardDrill
from opsdrill.faults import PortConflict
from opsdrill.recovery.config import free_port
from opsdrill.recovery.port_owner import listeners
from opsdrill.targets.base import Target

pytestmark = [
    pytest.mark.destructive,
    pytest.mark.runbook("5.2.1"),
    pytest.mark.fault("port_conflict"),
]


def test_port_taken_at_start_is_diagnosed_by_inode_and_freed(
    target: Target,
    drill: StandardDrill,
) -> None:
    fault = PortConflict(target)
    port = fault.port
    found: list[int] = []

    def start_refused() -> bool:
        return bool(fault.start_error) and not target.service("api").is_running()

    def diagnosed() -> bool:
        found[:] = [pid for pid, _, _ in listeners(target, port)]
        return bool(found)

    alerts, resolved = drill.probes.alert_cycle("ServiceDown")  # the app is down
    spec = drill.spec(
        name="port-conflict",
        title="API cannot start: its port is taken",
        severity="P0",
        fault=fault,
        effect=Detector("the app's start is refused", start_refused, 5),
        detectors=[
            drill.faults.api_silent(),
            Detector(f"/proc: a process listens on port {port}", diagnosed, 5),
            *alerts,
        ],
        also_steady=[drill.faults.no_run_running()],
        recover=free_port(target, port),
        resolved=resolved,
    )
    drill.run(spec)
    assert "address already in use" in (fault.start_error or "").lower(), fault.start_error
    assert found == [fault.entry.undo["holder"][1]], "diagnosis must name exactly the holder"
