"""Enough events to tell? One-sided Clopper–Pearson bounds on an SLO's bad-event ratio.

A 99.9 % objective allows 0.1 % bad events. Zero bad in 400 requests does not show it: a true
bad ratio of 0.75 % still gives zero bad in 400 draws 5 % of the time. So a verdict is

- MET when the one-sided upper bound on the bad ratio is within the error budget,
- BREACHED when the one-sided lower bound is beyond it,
- INCONCLUSIVE otherwise, with the number of events that would have told at the observed ratio.

Clopper–Pearson (exact binomial) rather than Wilson: Wilson's bound is too optimistic near
zero bad events, which is exactly where a healthy stack sits (0 of n: Wilson says MET for
99.9 % from 2 703 events, the exact bound from 2 995).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy.stats import beta

__all__ = ["Evidence", "events_needed", "lower_bound", "upper_bound"]


def upper_bound(bad: float, total: float, confidence: float = 0.95) -> float:
    """One-sided `confidence` upper bound on the bad ratio (1.0 without events)."""
    if total <= 0 or bad >= total:
        return 1.0
    return float(beta.ppf(confidence, bad + 1, total - bad))


def lower_bound(bad: float, total: float, confidence: float = 0.95) -> float:
    """One-sided `confidence` lower bound on the bad ratio (0.0 with no bad event)."""
    if total <= 0 or bad <= 0:
        return 0.0
    return float(beta.ppf(1 - confidence, bad, total - bad + 1))


def events_needed(budget: float, ratio: float = 0.0, confidence: float = 0.95) -> int | None:
    """Events a run needs, at bad ratio `ratio`, for the bound to decide against `budget`.

    Below the budget: the smallest n whose upper bound is within it (MET); above: the smallest
    n whose lower bound is beyond it (BREACHED). None when `ratio` equals the budget: no run
    size can tell.
    """
    if math.isclose(ratio, budget, rel_tol=1e-9, abs_tol=1e-15):
        return None
    if ratio < budget:

        def decided(n: int) -> bool:
            return upper_bound(ratio * n, n, confidence) <= budget
    else:

        def decided(n: int) -> bool:
            return lower_bound(ratio * n, n, confidence) > budget

    hi = 1
    while not decided(hi):
        hi *= 2
        if hi > 10**12:
            return None
    lo = hi // 2  # not decided (or 0)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if decided(mid) else (mid, hi)
    return hi


@dataclass(frozen=True)
class Evidence:
    """`bad` of `total` events against an error `budget` (1 - objective)."""

    bad: int
    total: int
    budget: float
    confidence: float = 0.95

    @property
    def ratio(self) -> float:
        return self.bad / self.total if self.total else 0.0

    @property
    def upper(self) -> float:
        return upper_bound(self.bad, self.total, self.confidence)

    @property
    def lower(self) -> float:
        return lower_bound(self.bad, self.total, self.confidence)

    @property
    def met(self) -> bool:
        return self.total > 0 and self.upper <= self.budget

    @property
    def breached(self) -> bool:
        return self.lower > self.budget

    @property
    def needed(self) -> int | None:
        """Events that would decide at the observed ratio (at zero bad without events)."""
        return events_needed(self.budget, self.ratio, self.confidence)

    def bounds(self) -> str:
        """'95 % bound on bad: 0.000–0.075 % (budget 0.1 %)'."""
        return (
            f"{self.confidence * 100:g} % bounds on bad {_pct(self.lower)}–{_pct(self.upper)} "
            f"(budget {_pct(self.budget)})"
        )

    def shortfall(self) -> str:
        """Why it is inconclusive, and how many events would tell."""
        need = self.needed
        if need is None:
            return f"the observed bad ratio {_pct(self.ratio)} equals the budget: no run can tell"
        return f"{need} events needed at the observed bad ratio {_pct(self.ratio)}"


def _pct(x: float) -> str:
    return f"{x * 100:.3g} %"
