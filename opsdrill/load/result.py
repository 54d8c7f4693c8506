"""Typed results of a load run and its verdicts per SLO, sized by the evidence they rest on.

An SLO is MET only when the one-sided confidence bound on its bad ratio is within the error
budget, BREACHED only when the lower bound is beyond it, INCONCLUSIVE otherwise (with the
events that would have told; see `evidence`). A run that did not send the configured load, or
sent it late (the generator fell behind its schedule), is INCONCLUSIVE: no SLO gets a server
verdict from it. Training runs refused for a missing or wrong API key make the completion SLO
an ERROR; runs still unfinished when the wait ends count as bad. A profile that does not
exercise an SLI at all (no training runs submitted) leaves that SLO SKIPPED, saying so.
"""

from __future__ import annotations

import enum
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from opsdrill.load import hdr
from opsdrill.load.evidence import Evidence, events_needed
from opsdrill.slo.model import SLO, BudgetBurn, SloFile
from opsdrill.stack.routes import ROUTES

__all__ = ["EndpointStats", "LoadResult", "SloVerdict", "Verdict", "gate_json", "judge"]

PERCENTILES = (50, 90, 95, 99, 99.9)
#: statuses that mean "your key was refused"
AUTH_REFUSED = ("http401",)


class Verdict(enum.StrEnum):
    """A run's verdict (PASS, FAIL, INCONCLUSIVE, ERROR) and an SLO's (MET, BREACHED,
    INCONCLUSIVE, ERROR, SKIPPED)."""

    PASS = "PASS"
    FAIL = "FAIL"
    MET = "MET"
    BREACHED = "BREACHED"
    INCONCLUSIVE = "INCONCLUSIVE"
    ERROR = "ERROR"
    SKIPPED = "SKIPPED"


@dataclass(frozen=True)
class EndpointStats:
    kind: str
    route: str
    count: int
    errors: int
    percentiles_ms: dict[str, float]
    max_ms: float


@dataclass(frozen=True)
class SloVerdict:
    slo: str
    verdict: Verdict
    measured: str
    objective: str
    bad: int
    total: int
    budget: str  # what this run burned, in words
    error_budget: float = 0.0  # the allowed bad ratio, 1 - objective
    confidence: float = 0.95
    lower: float = 0.0  # one-sided bounds on the bad ratio
    upper: float = 1.0
    needed: int | None = None  # events that would decide at the observed ratio
    expected: int = 0  # events the profile is due to give this SLO
    sized: bool = True  # the profile can reach MET for it (expected >= needed at zero bad)
    note: str = ""  # why it is INCONCLUSIVE, ERROR or SKIPPED
    profile: str = ""

    def line(self) -> str:
        text = f"{self.verdict.value:12} {self.slo}: {self.measured} (objective {self.objective})"
        return text + (f"; {self.note}" if self.note else "")


@dataclass
class LoadResult:
    target_rate: float  # the configured rate, requests/s
    achieved_rate: float
    target_count: int  # configured rate × duration
    achieved_count: int  # due in the steady phase and sent before it ended
    duration: float
    min_rate_ratio: float
    complete: bool
    workers: int
    endpoints: dict[str, EndpointStats]
    runs: dict[str, int] = field(default_factory=dict)  # completed / failed / unfinished
    verdicts: list[SloVerdict] = field(default_factory=list)
    artefacts: dict[str, str] = field(default_factory=dict)
    histograms: dict[str, Any] = field(default_factory=dict, repr=False)
    counts: dict[str, dict[str, int]] = field(default_factory=dict, repr=False)
    profile: str = ""
    scheduled_count: int = 0  # what the generator's users planned (information only)
    late_count: int = 0  # sent more than `late_after` s after their due time
    late_after: float = 0.1
    max_late_ratio: float = 0.01
    mix: dict[str, float] = field(default_factory=dict)
    run_interval: float = 0.0  # training runs submitted every N s; 0 = none
    api_key_given: bool = True

    @property
    def load_reached(self) -> bool:
        return self.complete and self.achieved_count >= self.min_rate_ratio * self.target_count

    @property
    def sent_count(self) -> int:
        return sum(c["sent"] for k, c in self.counts.items() if k != "runs:submit")

    @property
    def late_ratio(self) -> float:
        return self.late_count / self.sent_count if self.sent_count else 0.0

    @property
    def schedule_kept(self) -> bool:
        return self.late_ratio <= self.max_late_ratio

    def load_problem(self) -> str:
        """Why the load itself cannot support a server verdict ('' when it can)."""
        problems = []
        if not self.complete:
            problems.append("a worker's samples never reached the master")
        if not self.load_reached:
            problems.append(
                f"the configured load was not reached: {self.achieved_count} of "
                f"{self.target_count} due requests sent ({self.target_rate:g}/s × "
                f"{self.duration:g} s), below {self.min_rate_ratio:.0%}"
            )
        if not self.schedule_kept:
            problems.append(
                f"the load generator could not keep the schedule: {self.late_count} of "
                f"{self.sent_count} requests ({self.late_ratio:.1%}) sent more than "
                f"{self.late_after * 1000:g} ms after they were due (at most "
                f"{self.max_late_ratio:.0%} allowed)"
            )
        return "; ".join(problems)

    @property
    def verdict(self) -> Verdict:
        if self.load_problem():
            return Verdict.INCONCLUSIVE
        seen = {v.verdict for v in self.verdicts}
        if Verdict.BREACHED in seen:
            return Verdict.FAIL
        if Verdict.ERROR in seen:
            return Verdict.ERROR
        if any(v.verdict is Verdict.INCONCLUSIVE and v.sized for v in self.verdicts):
            return Verdict.INCONCLUSIVE
        return Verdict.PASS

    @property
    def passed(self) -> bool:
        return self.verdict is Verdict.PASS

    def failed_slos(self) -> list[str]:
        return [v.slo for v in self.verdicts if v.verdict in (Verdict.BREACHED, Verdict.ERROR)]

    def unjudged(self) -> list[SloVerdict]:
        """SLOs this profile is too small to judge (stated, never counted as met)."""
        return [v for v in self.verdicts if not v.sized]

    def merged(self, kinds: list[str]) -> Any:
        return hdr.merge(self.histograms[k] for k in kinds if k in self.histograms)

    def summary(self) -> str:
        """What a CI log should show: the verdict, the load, then one line per SLO."""
        name = f" [{self.profile}]" if self.profile else ""
        head = (
            f"load gate{name} {self.verdict.value}: sent {self.achieved_rate:.1f}/s of the "
            f"configured {self.target_rate:g}/s ({self.achieved_count}/{self.target_count} due "
            f"requests, {self.late_count} late, {self.workers or 1} generator process(es))"
        )
        if problem := self.load_problem():
            head += f"; {problem}: INCONCLUSIVE, not a pass"
        return "\n".join([head, *(v.line() for v in self.verdicts)])

    def to_json(self) -> dict[str, Any]:
        data = {
            "profile": self.profile,
            "verdict": self.verdict.value,
            "passed": self.passed,
            "load_reached": self.load_reached,
            "schedule_kept": self.schedule_kept,
            "load_problem": self.load_problem(),
            "target_rate": round(self.target_rate, 3),
            "achieved_rate": round(self.achieved_rate, 3),
            "target_count": self.target_count,
            "achieved_count": self.achieved_count,
            "scheduled_count": self.scheduled_count,
            "late_count": self.late_count,
            "late_after_s": self.late_after,
            "duration_s": self.duration,
            "complete": self.complete,
            "workers": self.workers,
            "endpoints": {k: asdict(v) for k, v in self.endpoints.items()},
            "runs": self.runs,
            "slos": [asdict(v) | {"verdict": v.verdict.value} for v in self.verdicts],
            "artefacts": self.artefacts,
        }
        return data

    def write_json(self, path: Path) -> Path:
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n")
        return path


def gate_json(results: dict[str, LoadResult]) -> dict[str, Any]:
    """slo.json for a gate of several profiles (in their order in the SLO file).

    The first profile's run sits at the top level exactly as a single run's JSON (so a reader
    of the older file sees one gate run), `profiles` maps every profile to the same shape (each
    SLO row naming its profile), and `gate_verdict` is the worst verdict over the profiles.
    """
    runs = {name: r.to_json() for name, r in results.items()}
    seen = {r.verdict for r in results.values()}
    order = (Verdict.FAIL, Verdict.ERROR, Verdict.INCONCLUSIVE, Verdict.PASS)
    worst = next((v.value for v in order if v in seen), Verdict.INCONCLUSIVE.value)
    first = next(iter(runs.values()), {})
    return {**first, "profiles": runs, "gate_verdict": worst}


def endpoint_stats(kind: str, hist: Any, counts: dict[str, int]) -> EndpointStats:
    pct = {f"p{p:g}": hist.get_value_at_percentile(p) / 1000 for p in PERCENTILES}
    errors = counts.get("transport", 0) + counts.get("http5xx", 0)
    return EndpointStats(kind, ROUTES.get(kind, kind), hist.get_total_count(), errors, pct,
                         hist.get_max_value() / 1000)  # fmt: skip


def judge(result: LoadResult, slo_file: SloFile) -> list[SloVerdict]:
    """One verdict per SLO in the file, from this run's samples."""
    return [_judge_one(result, slo, slo_file.gate.confidence) for slo in slo_file.slos]


@dataclass(frozen=True)
class _Seen:
    bad: int
    total: int
    measured: str
    expected: int  # events the profile is due to give this SLO
    note: str = ""  # set: not judged (ERROR / SKIPPED)
    error: bool = False


def _covered(result: LoadResult, slo: SLO) -> list[str]:
    kinds = [k for k in result.counts if k != "runs:submit" or slo.sli != "latency"]
    return [k for k in kinds if slo.covers(ROUTES.get(k, k))]


def _expected(result: LoadResult, slo: SLO) -> int:
    """Events of this SLI the configured profile is due to send (runs:submit not counted)."""
    share = sum(v for k, v in result.mix.items() if slo.covers(ROUTES.get(k, k)))
    return int(result.target_count * share)


def _completion(result: LoadResult) -> _Seen:
    runs = result.runs
    done, failed = runs.get("completed", 0), runs.get("failed", 0)
    unfinished = runs.get("unfinished", 0)
    planned = 0
    if result.run_interval > 0 and result.duration > 0.5:
        planned = -int(-(result.duration - 0.5) // result.run_interval)
    total = done + failed + unfinished
    measured = f"{done}/{total} runs completed ({failed} failed, {unfinished} unfinished)"
    submit = result.counts.get("runs:submit", {})
    refused = sum(submit.get(k, 0) for k in AUTH_REFUSED)
    if result.run_interval <= 0:
        return _Seen(0, 0, "no training runs submitted", 0,
                     "this profile submits no training runs: not exercised")  # fmt: skip
    if refused or not result.api_key_given:
        why = "no API key was given" if not result.api_key_given else "the key was refused"
        return _Seen(failed + unfinished, total, measured, planned,
                     f"the API answered 401 to {refused} of {submit.get('sent', 0)} run "
                     f"submissions ({why}): pass the target's X-API-Key", error=True)  # fmt: skip
    return _Seen(failed + unfinished, total, measured, planned)


def _observe(result: LoadResult, slo: SLO) -> _Seen:
    if slo.sli == "completion":
        return _completion(result)
    kinds = _covered(result, slo)
    total = sum(result.counts[k]["sent"] for k in kinds)
    expected = _expected(result, slo)
    if expected == 0:
        return _Seen(0, total, "no requests of this SLI in the profile's mix", 0,
                     "this profile's mix does not exercise it")  # fmt: skip
    if slo.sli == "latency":
        assert slo.threshold is not None
        hist = result.merged(kinds)
        p = hist.get_value_at_percentile(slo.percentile) / 1e6
        bad = hdr.count_above(hist, slo.threshold)
        limit = f"{slo.threshold * 1000:g} ms"
        measured = f"p{slo.percentile:g} {p * 1000:.1f} ms; {bad} of {total} over {limit}"
        return _Seen(bad, total, measured, expected)
    keys = ("transport", "http503") if slo.sli == "availability" else ("transport", "http5xx")
    bad = sum(result.counts[k][key] for k in kinds for key in keys)
    share = 1 - bad / total if total else 1.0
    return _Seen(bad, total, f"{share * 100:.3f} % good ({bad} bad of {total})", expected)


def _judge_one(result: LoadResult, slo: SLO, confidence: float) -> SloVerdict:
    seen = _observe(result, slo)
    ev = Evidence(seen.bad, seen.total, slo.error_budget, confidence)
    at_zero = events_needed(slo.error_budget, 0.0, confidence) or 0
    sized = seen.expected >= at_zero
    note = seen.note
    if seen.error:
        verdict = Verdict.ERROR
    elif note:
        verdict, sized = Verdict.SKIPPED, True
    elif problem := result.load_problem():
        verdict, note = Verdict.INCONCLUSIVE, problem
    elif ev.breached:
        verdict = Verdict.BREACHED
    elif ev.met:
        verdict = Verdict.MET
    else:
        verdict, note = Verdict.INCONCLUSIVE, f"not enough evidence: {ev.shortfall()}"
    if not sized and verdict is not Verdict.ERROR:
        what = "runs" if slo.sli == "completion" else "events"
        note = (f"{note}; " if note else "") + (
            f"not judgeable at this size: the profile gives about {seen.expected} {what}, "
            f"MET needs {at_zero} with none bad"
        )
    measured = seen.measured
    if seen.total and not seen.note:
        measured += f"; {ev.bounds()}"
    burn: BudgetBurn = slo.burn(seen.bad, seen.total, result.duration)
    objective = slo.describe().split(": ", 1)[1]
    return SloVerdict(
        slo.name, verdict, measured, objective, seen.bad, seen.total, burn.explain(),
        error_budget=slo.error_budget, confidence=confidence, lower=ev.lower, upper=ev.upper,
        needed=ev.needed, expected=seen.expected, sized=sized, note=note,
        profile=result.profile,
    )  # fmt: skip
