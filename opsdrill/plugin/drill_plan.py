"""What a chaos run would do, worked out without touching anything: `pytest chaos --plan`.

A drill declares its fault with `@pytest.mark.fault("kind", **params)` (the fault's `kind`;
a class alone would be taken by pytest as the thing to decorate); the plan reads
the class's blast radius and undo, the drill's runbook procedure, and the target spec string
(the target itself is not contacted).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pytest

from opsdrill.faults import REGISTRY

__all__ = ["DrillPlan", "plan_for", "render"]


@dataclass(frozen=True)
class DrillPlan:
    test: str
    runbook: str
    fault: str
    target: str
    blast_radius: str
    undo: str
    destructive: bool


def _params(kwargs: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in kwargs.items())


def plan_for(item: pytest.Item, target: str) -> DrillPlan:
    """The plan of one collected test, from its markers only."""
    runbook = item.get_closest_marker("runbook")
    fault = item.get_closest_marker("fault")
    if fault is None or not fault.args:
        return DrillPlan(item.nodeid, runbook.args[0] if runbook else "-",
                         "(not declared: add @pytest.mark.fault('<kind>', ...))", target,
                         "(unknown)", "(unknown)",
                         item.get_closest_marker("destructive") is not None)  # fmt: skip
    cls = fault.args[0]
    if isinstance(cls, str):  # a kind: the usual spelling (a lone class would be decorated)
        cls = REGISTRY.get(cls, cls)
    name = getattr(cls, "kind", getattr(cls, "__name__", str(cls)))
    return DrillPlan(
        test=item.nodeid,
        runbook=runbook.args[0] if runbook else "-",
        fault=f"{name}({_params(fault.kwargs)})",
        target=target,
        blast_radius=getattr(cls, "blast_radius", "") or "(not stated)",
        undo=getattr(cls, "undo_summary", "") or "(not stated)",
        destructive=item.get_closest_marker("destructive") is not None,
    )


def render(plans: list[DrillPlan]) -> str:
    """Human-readable plan, one block per drill."""
    lines = [f"opsdrill plan: {len(plans)} drill(s); nothing was run or touched", ""]
    for p in plans:
        lines += [
            p.test,
            f"    runbook       {p.runbook}",
            f"    fault         {p.fault}",
            f"    target        {p.target}{'' if p.destructive else '  (not destructive)'}",
            f"    blast radius  {p.blast_radius}",
            f"    undo          {p.undo}",
            "",
        ]
    return "\n".join(lines)
