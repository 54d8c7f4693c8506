"""Runbook §5.2.2 and §5.2.5 on the network path: a proxy hop restarted, the latency to the
database measured.

Each builder returns a `Procedure` (runbook id, title, steps) over the Target interface; a
drill names one as its `recover`, and its steps are timed on the drill's timeline.
"""

from __future__ import annotations

from collections.abc import Callable

from opsdrill.drill.procedure import Procedure, procedure
from opsdrill.recovery.database import db_status
from opsdrill.recovery.services import confirm_health
from opsdrill.targets.base import Target

__all__ = ["diagnose_network_latency", "restart_network_hop"]


def restart_network_hop(target: Target, hop: str = "proxy") -> Procedure:
    """§5.2.2 when PostgreSQL is up but the app's connections to it are reset: the fault is
    on the path, so the hop between them is restarted the §5.3.1 way, then /health confirmed."""
    service = target.service(hop)

    def restart() -> str:
        service.restart(timeout=60)
        return f"{hop} restarted (pid {service.pid()})"

    return procedure(
        "5.2.2",
        f"connections reset on the path to PostgreSQL: restart the {hop} (§5.3.1)",
        ("diagnose: is PostgreSQL up, SELECT 1 (direct)", lambda: db_status(target)),
        (f"restart the network hop ({hop})", restart),
        ("confirm /health", confirm_health(target)),
    )


def diagnose_network_latency(measure: Callable[[], float], baseline: float) -> Procedure:
    """§5.2.5 diagnosis of a slow API whose cause is latency to the database: nothing in the
    stack to fix, so the drill checks the stack rides it out."""

    def rtt() -> str:
        return (
            f"app → database round trip {measure() * 1000:.0f} ms (baseline "
            f"{baseline * 1000:.1f} ms): the network, not a slow statement"
        )

    return procedure("5.2.5", "diagnose: network latency to the database", ("round trip", rtt))
