"""Service level objectives: one file (`slo.yaml`), read by the load gate and the alert rules.

The same `SLO` objects give the load gate its thresholds (`opsdrill.load`) and Prometheus its
recording rules and burn-rate alerts (`opsdrill.slo.rules`), so the gate and the pager cannot
disagree about what "good" means. A malformed file is refused with `file:line: reason`.

Error-budget arithmetic lives here too: an error ratio divided by the budget (1 - objective) is
the burn rate; a burn rate held for a duration consumes `burn × duration / window` of the
window's budget.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from opsdrill import durations
from opsdrill.errors import UsageError

__all__ = [
    "DEFAULT_POLICY",
    "SLI_KINDS",
    "SLO",
    "BudgetBurn",
    "BurnAlert",
    "Gate",
    "GateProfile",
    "SloFile",
    "SloFileError",
    "format_duration",
    "parse_duration",
]

#: what each SLI counts as bad
SLI_KINDS = {
    "availability": "requests the service did not answer (connection error, timeout, 502/503/504)",
    "success_ratio": "requests answered with a 5xx status or not answered at all",
    "latency": "requests slower than the threshold",
    "completion": "training runs that ended failed instead of completed",
}
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class SloFileError(UsageError):
    """The SLO file is malformed; the message starts with `file:line:`."""


@dataclass(frozen=True)
class BurnAlert:
    """One multi-window burn-rate condition: both windows above `burn_rate` × budget."""

    severity: str
    burn_rate: float
    long_window: float  # seconds
    short_window: float

    def budget_spent(self, window: float) -> float:
        """Share of a `window`-long budget that this condition has burned when it fires."""
        return self.burn_rate * self.long_window / window


#: the SRE workbook's policy for a 30-day SLO: 2 % of the budget in 1 h, 5 % in 6 h, 10 % in 3 d
DEFAULT_POLICY = (
    BurnAlert("page", 14.4, 3600, 300),
    BurnAlert("page", 6.0, 6 * 3600, 1800),
    BurnAlert("ticket", 1.0, 3 * 86400, 6 * 3600),
)


@dataclass(frozen=True)
class SLO:
    """One objective: `objective` of the events an SLI counts must be good over `window`."""

    name: str
    sli: str
    objective: float  # 0.999
    window: float  # seconds
    threshold: float | None = None  # seconds; latency SLIs only
    paths: tuple[str, ...] = ()  # route templates it covers; empty = every route
    description: str = ""
    line: int = 0  # where the file declares it

    @property
    def error_budget(self) -> float:
        """The share of events allowed to be bad."""
        return round(1.0 - self.objective, 12)

    @property
    def percentile(self) -> float:
        """For latency SLOs: the percentile the threshold bounds (p95 for a 95 % objective)."""
        return round(self.objective * 100, 6)

    def covers(self, path: str) -> bool:
        """True when requests on route template `path` count towards this SLO."""
        return not self.paths or path in self.paths

    def burn(self, bad: float, total: float, duration: float) -> BudgetBurn:
        """What `bad` of `total` events over `duration` seconds did to this SLO's budget."""
        ratio = bad / total if total else 0.0
        return BudgetBurn(self, ratio, ratio / self.error_budget, duration)

    def describe(self) -> str:
        """One line for reports: `prediction-latency: p95 < 500 ms over 1d`."""
        if self.sli == "latency" and self.threshold is not None:
            what = f"p{self.percentile:g} < {format_duration(self.threshold)}"
        else:
            what = f"{self.sli.replace('_', ' ')} ≥ {self.objective * 100:g} %"
        return f"{self.name}: {what} over {format_duration(self.window)}"


@dataclass(frozen=True)
class BudgetBurn:
    """An error ratio seen for `duration` seconds, in error-budget terms."""

    slo: SLO
    error_ratio: float
    burn_rate: float
    duration: float

    @property
    def budget_consumed(self) -> float:
        """Share of the window's whole error budget this period used up."""
        return self.burn_rate * self.duration / self.slo.window

    @property
    def exhausted_in(self) -> float:
        """Seconds until a full budget is gone if this burn rate held (inf when zero)."""
        return self.slo.window / self.burn_rate if self.burn_rate > 0 else math.inf

    def explain(self) -> str:
        """What it means for the window, in one sentence a manager can read."""
        window = format_duration(self.slo.window)
        head = (
            f"{self.slo.name}: {self.error_ratio * 100:.3g} % bad for "
            f"{format_duration(self.duration)} = burn rate {self.burn_rate:.3g}×, "
            f"{self.budget_consumed * 100:.3g} % of the {window} error budget"
        )
        if self.burn_rate <= 1:
            return head + f"; sustainable (≤ 1× keeps the {window} objective)"
        return head + f"; held, it would exhaust the budget in {format_duration(self.exhausted_in)}"


@dataclass(frozen=True)
class GateProfile:
    """One load the gate runs: `rate` requests/s of `mix` for `duration` s after `ramp` s."""

    name: str
    rate: float
    duration: float
    ramp: float = 3.0
    timeout: float = 5.0  # per request; slower is "not answered"
    run_interval: float = 0.0  # a training run every N s; 0 = none
    run_wait: float = 90.0  # how long submitted runs may take to finish after the load
    mix: tuple[tuple[str, float], ...] = ()  # (request kind, share); empty = the default mix
    description: str = ""
    line: int = 0

    @property
    def events(self) -> int:
        """Requests the profile is due to send in its steady (judged) phase."""
        return math.floor(self.rate * self.duration)

    @property
    def runs(self) -> int:
        """Training runs it submits: one every `run_interval` s from 0.5 s into the steady phase."""
        if self.run_interval <= 0 or self.duration <= 0.5:
            return 0
        return math.ceil((self.duration - 0.5) / self.run_interval)


@dataclass(frozen=True)
class Gate:
    """What a load verdict needs: confidence, the load as configured, and the profiles."""

    confidence: float = 0.95  # one-sided, on each SLO's bad ratio
    min_rate: float = 0.95  # share of rate × duration that must be sent, else INCONCLUSIVE
    late_after: float = 0.1  # s after its due time: a request sent later counts as late
    max_late: float = 0.01  # share of late requests beyond which the run is INCONCLUSIVE
    profiles: tuple[GateProfile, ...] = ()

    def profile(self, name: str) -> GateProfile:
        for p in self.profiles:
            if p.name == name:
                return p
        have = ", ".join(p.name for p in self.profiles) or "none"
        raise UsageError(f"no gate profile named {name!r}; the SLO file has: {have}")


@dataclass(frozen=True)
class SloFile:
    """Everything `slo.yaml` declares."""

    path: Path
    service: str
    job: str
    slos: tuple[SLO, ...]
    policy: tuple[BurnAlert, ...] = DEFAULT_POLICY
    gate: Gate = Gate()

    def get(self, name: str) -> SLO:
        """The SLO called `name`, or an error listing the names there are."""
        for slo in self.slos:
            if slo.name == name:
                return slo
        raise UsageError(f"{self.path}: no SLO named {name!r}; it has: {self.names()}")

    def names(self) -> str:
        return ", ".join(s.name for s in self.slos)


# -- durations ---------------------------------------------------------------------------------
def parse_duration(text: str) -> float:
    """Seconds of an SLO file's duration ('500ms', '1.5h', '30d'); above zero."""
    return durations.seconds(text, decimals=True, positive=True)


def format_duration(seconds: float) -> str:
    """The Prometheus-style spelling of a duration: 0.5 -> '500ms', 3600 -> '1h', 259200 -> '3d'."""
    if math.isinf(seconds):
        return "forever"
    for unit in ("d", "h", "m", "s"):
        size = _UNITS[unit]
        if seconds >= size and (seconds / size).is_integer():
            return f"{int(seconds // size)}{unit}"
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    return f"{seconds / 86400:.1f} days" if seconds >= 86400 else f"{seconds:.3g}s"


# -- the file ----------------------------------------------------------------------------------
