"""Typed results of a load run and its verdicts per SLO.

A run that did not reach its target load is INCONCLUSIVE, never a pass: every SLO that looked
fine is downgraded, and the gate fails. An SLO with no events in the run (e.g. completion when
no run finished) is SKIPPED and shown, not judged.
"""

from __future__ import annotations

import enum
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from opsdrill.load import hdr
from opsdrill.load.config import ROUTES
from opsdrill.slo import SLO, BudgetBurn, SloFile

__all__ = ["EndpointStats", "LoadResult", "SloVerdict", "Verdict", "judge"]

PERCENTILES = (50, 90, 95, 99, 99.9)


class Verdict(enum.StrEnum):
    PASS = "PASS"
    FAIL = "FAIL"
    INCONCLUSIVE = "INCONCLUSIVE"
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

    def line(self) -> str:
        return f"{self.verdict.value:12} {self.slo}: {self.measured} (objective {self.objective})"


@dataclass
class LoadResult:
    target_rate: float
    achieved_rate: float
    target_count: int
    achieved_count: int
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

    @property
    def load_reached(self) -> bool:
        return self.complete and self.achieved_count >= self.min_rate_ratio * self.target_count

    @property
    def verdict(self) -> Verdict:
        if not self.load_reached:
            return Verdict.INCONCLUSIVE
        if any(v.verdict is Verdict.FAIL for v in self.verdicts):
            return Verdict.FAIL
        return Verdict.PASS

    @property
    def passed(self) -> bool:
        return self.verdict is Verdict.PASS

    def failed_slos(self) -> list[str]:
        return [v.slo for v in self.verdicts if v.verdict is Verdict.FAIL]

    def merged(self, kinds: list[str]) -> Any:
        return hdr.merge(self.histograms[k] for k in kinds if k in self.histograms)

    def summary(self) -> str:
        """What a CI log should show: the verdict, the load, then one line per SLO."""
        head = (
            f"load gate {self.verdict.value}: achieved {self.achieved_rate:.1f}/s of "
            f"{self.target_rate:.1f}/s target ({self.achieved_count}/{self.target_count} due "
            f"requests sent on time, {self.workers or 1} generator process(es))"
        )
        if not self.complete:
            head += "; a worker's samples never reached the master"
        elif not self.load_reached:
            head += f"; below {self.min_rate_ratio:.0%} of the target: INCONCLUSIVE, not a pass"
        return "\n".join([head, *(v.line() for v in self.verdicts)])

    def to_json(self) -> dict[str, Any]:
        data = {
            "verdict": self.verdict.value,
            "passed": self.passed,
            "load_reached": self.load_reached,
            "target_rate": round(self.target_rate, 3),
            "achieved_rate": round(self.achieved_rate, 3),
            "target_count": self.target_count,
            "achieved_count": self.achieved_count,
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


def endpoint_stats(kind: str, hist: Any, counts: dict[str, int]) -> EndpointStats:
    pct = {f"p{p:g}": hist.get_value_at_percentile(p) / 1000 for p in PERCENTILES}
    errors = counts.get("transport", 0) + counts.get("http5xx", 0)
    return EndpointStats(kind, ROUTES.get(kind, kind), hist.get_total_count(), errors, pct,
                         hist.get_max_value() / 1000)  # fmt: skip


def judge(result: LoadResult, slo_file: SloFile) -> list[SloVerdict]:
    """One verdict per SLO in the file, from this run's samples."""
    return [_judge_one(result, slo) for slo in slo_file.slos]


def _judge_one(result: LoadResult, slo: SLO) -> SloVerdict:
    kinds = [k for k in result.counts if k != "runs:submit" or slo.sli != "latency"]
    kinds = [k for k in kinds if slo.covers(ROUTES.get(k, k))]
    total = sum(result.counts[k]["sent"] for k in kinds)
    if slo.sli == "completion":
        done, failed = result.runs.get("completed", 0), result.runs.get("failed", 0)
        bad, total = failed, done + failed
        measured = f"{done}/{total} runs completed ({result.runs.get('unfinished', 0)} unfinished)"
        ok = total == 0 or done / total >= slo.objective
    elif slo.sli == "latency":
        assert slo.threshold is not None
        hist = result.merged(kinds)
        p = hist.get_value_at_percentile(slo.percentile) / 1e6
        bad = hdr.count_above(hist, slo.threshold)
        measured = f"p{slo.percentile:g} {p * 1000:.1f} ms over {total} requests"
        ok = p < slo.threshold
    else:
        keys = ("transport", "http503") if slo.sli == "availability" else ("transport", "http5xx")
        bad = sum(result.counts[k][key] for k in kinds for key in keys)
        share = 1 - bad / total if total else 1.0
        measured = f"{share * 100:.3f} % good ({bad} bad of {total})"
        ok = share >= slo.objective
    burn: BudgetBurn = slo.burn(bad, total, result.duration)
    if total == 0:
        verdict = Verdict.SKIPPED
    elif not ok:
        verdict = Verdict.FAIL
    else:
        verdict = Verdict.PASS if result.load_reached else Verdict.INCONCLUSIVE
    objective = slo.describe().split(": ", 1)[1]
    return SloVerdict(slo.name, verdict, measured, objective, bad, total, burn.explain())
