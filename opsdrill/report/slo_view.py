"""The load gate's `slo.json` read back per profile, old format or new.

Two shapes exist. The first: one run at the top level, each SLO PASS/FAIL with `measured`,
`bad`, `total` and `budget`. The evidence-sized gate (branch `slo`): the first profile's run
still at the top level, every profile's run under `profiles` (name -> the same shape), the
worst verdict in `gate_verdict`, and each SLO row MET/BREACHED/INCONCLUSIVE/ERROR/SKIPPED with
one-sided bounds on its bad ratio (`lower`, `upper`, `confidence`, `error_budget`), the events
that would have decided (`needed`) and why it was not judged (`note`). Any field may be missing:
it reads as unknown and shows as "–", never as a made-up value.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["GateRun", "SloRow", "gate_runs", "gate_verdict", "pct"]

#: the bounds text the evidence-sized gate appends to `measured`; shown in its own column
_BOUNDS = re.compile(r";\s*[\d.]+ % bounds on bad .*$")


def pct(ratio: float | None, digits: int = 3) -> str:
    return "–" if ratio is None else f"{ratio * 100:.{digits}f} %"


@dataclass(frozen=True)
class SloRow:
    profile: str
    slo: str
    objective: str
    verdict: str
    measured: str  # the gate's own words, without the bounds it appends
    bad: int | None
    total: int | None
    budget: str  # what this run burned of the error budget, in words
    error_budget: float | None = None  # allowed bad ratio (1 - objective)
    confidence: float | None = None
    lower: float | None = None  # one-sided bounds on the bad ratio
    upper: float | None = None
    needed: int | None = None
    note: str = ""

    @property
    def good_ratio(self) -> float | None:
        if self.bad is None or not self.total:
            return None
        return 1 - self.bad / self.total

    @property
    def events(self) -> str:
        if self.total is None:
            return "–"
        if self.total == 0:
            return "none"
        return f"{self.bad if self.bad is not None else '?'} bad of {self.total}"

    @property
    def bound(self) -> str:
        """The bound the verdict rests on, as a bad ratio against the budget.

        BREACHED rests on the lower bound being beyond the budget; anything else on the upper
        bound (MET when it is within). '–' when the file carries no bounds (older format)."""
        if self.confidence is None or not self.total:
            return "–"  # an older file, or no events: nothing bounded
        conf = f"{self.confidence * 100:g} %"
        budget = f" (budget {pct(self.error_budget)})" if self.error_budget is not None else ""
        if self.verdict == "BREACHED" and self.lower is not None:
            return f"bad ≥ {pct(self.lower)} at {conf}{budget}"
        if self.upper is None:
            return "–"
        return f"bad ≤ {pct(self.upper)} at {conf}{budget}"

    @property
    def needed_text(self) -> str:
        """Events that would have decided: shown only when the evidence did not."""
        if self.verdict != "INCONCLUSIVE" or self.needed is None:
            return ""
        return f"{self.needed} events needed"

    @property
    def why(self) -> str:
        """The events needed (unless the gate's note already says them) and the note."""
        need = self.needed_text if str(self.needed) not in self.note else ""
        return "; ".join(x for x in (need, self.note) if x)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"good_ratio": self.good_ratio, "bound_text": self.bound}


@dataclass(frozen=True)
class GateRun:
    """One profile's load run and its SLO rows."""

    profile: str  # "" for an older file that knew one profile only
    verdict: str
    achieved_rate: Any
    target_rate: Any
    achieved_count: Any
    target_count: Any
    duration_s: Any
    late_count: int | None
    load_problem: str
    rows: list[SloRow] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _num(value: Any, kind: type) -> Any:
    try:
        return None if value is None else kind(value)
    except (TypeError, ValueError):
        return None


def _row(profile: str, v: dict[str, Any]) -> SloRow:
    return SloRow(
        profile=str(v.get("profile") or profile),
        slo=str(v.get("slo", v.get("name", "?"))),
        objective=str(v.get("objective", "")),
        verdict=str(v.get("verdict", "?")),
        measured=_BOUNDS.sub("", str(v.get("measured", ""))),
        bad=_num(v.get("bad"), int),
        total=_num(v.get("total"), int),
        budget=str(v.get("budget", "")),
        error_budget=_num(v.get("error_budget"), float),
        confidence=_num(v.get("confidence"), float),
        lower=_num(v.get("lower"), float),
        upper=_num(v.get("upper"), float),
        needed=_num(v.get("needed"), int),
        note=str(v.get("note") or ""),
    )


def _run(name: str, run: dict[str, Any]) -> GateRun:
    profile = str(run.get("profile") or name)
    return GateRun(
        profile=profile,
        verdict=str(run.get("verdict", "?")),
        achieved_rate=run.get("achieved_rate", "?"),
        target_rate=run.get("target_rate", "?"),
        achieved_count=run.get("achieved_count", "?"),
        target_count=run.get("target_count", "?"),
        duration_s=run.get("duration_s", "?"),
        late_count=_num(run.get("late_count"), int),
        load_problem=str(run.get("load_problem") or ""),
        rows=[_row(profile, v) for v in run.get("slos") or [] if isinstance(v, dict)],
    )


def gate_runs(slo: dict[str, Any]) -> list[GateRun]:
    """Every profile's run: `profiles` when the file has them, else the top-level run."""
    profiles = slo.get("profiles")
    if isinstance(profiles, dict) and profiles:
        return [_run(str(n), r) for n, r in profiles.items() if isinstance(r, dict)]
    return [_run("", slo)]


def gate_verdict(slo: dict[str, Any]) -> str:
    """The gate's verdict: the worst over its profiles (`gate_verdict`), else the run's."""
    return str(slo.get("gate_verdict") or slo.get("verdict") or "?")
