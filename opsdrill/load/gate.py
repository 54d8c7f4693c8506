"""The gate's profiles against the SLOs: which SLO a profile exercises, and whether it is big
enough to reach MET for it.

A profile that sends 1200 requests cannot show 99.9 % (the bound needs 2995 with none bad);
saying so before the run is honest, and the only alternative to a gate that can never pass.
"""

from __future__ import annotations

from opsdrill.load.config import DEFAULT_MIX
from opsdrill.load.evidence import events_needed
from opsdrill.slo.model import SLO, GateProfile
from opsdrill.stack.routes import ROUTES

__all__ = ["exercises", "expected_events", "size_statement"]


def _mix(profile: GateProfile) -> dict[str, float]:
    return dict(profile.mix) or dict(DEFAULT_MIX)


def expected_events(profile: GateProfile, slo: SLO) -> int:
    """Events of `slo`'s SLI the profile is due to give in its judged phase."""
    if slo.sli == "completion":
        return profile.runs
    share = sum(v for k, v in _mix(profile).items() if slo.covers(ROUTES[k]))
    return int(profile.events * share)


def exercises(profile: GateProfile, slo: SLO) -> bool:
    """True when the profile sends any event `slo` counts."""
    return expected_events(profile, slo) > 0


def size_statement(profile: GateProfile, slo: SLO, confidence: float) -> str:
    """'' when the profile can reach MET for `slo`; else one sentence saying why not."""
    need = events_needed(slo.error_budget, 0.0, confidence) or 0
    have = expected_events(profile, slo)
    if have >= need:
        return ""
    what = "training runs" if slo.sli == "completion" else "events"
    return (
        f"gate profile {profile.name!r} cannot judge {slo.name}: it gives about {have} {what}, "
        f"and a {confidence * 100:g} % bound needs {need} with none bad to show "
        f"{slo.objective * 100:g} %"
    )
