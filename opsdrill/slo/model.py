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
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from opsdrill import durations
from opsdrill.errors import UsageError
from opsdrill.stack.routes import ROUTES

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
    "load_slo_file",
    "parse_duration",
    "parse_slo_text",
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
def load_slo_file(path: Path | str) -> SloFile:
    """Read and check an SLO file; `SloFileError` names the line and the reason."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise SloFileError(f"{path}: cannot read the SLO file: {exc.strerror}") from exc
    return parse_slo_text(text, path)


def parse_slo_text(text: str, path: Path | str = "slo.yaml") -> SloFile:
    """Parse SLO YAML held in memory (the file name is only used in messages)."""
    return _Parser(Path(path)).document(text)


class _Parser:
    """Walks yaml's node tree, so every complaint can say on which line it is."""

    TOP = frozenset({"version", "service", "job", "slos", "alerting", "gate"})
    SLO_KEYS = frozenset(
        {"name", "sli", "objective", "window", "threshold", "paths", "description"}
    )
    ALERT_KEYS = frozenset({"severity", "burn_rate", "long", "short"})
    GATE_KEYS = frozenset({"confidence", "min_rate", "late_after", "max_late", "profiles"})
    PROFILE_KEYS = frozenset({"name", "rate", "duration", "ramp", "timeout", "run_interval",
                              "run_wait", "mix", "description"})  # fmt: skip

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, node: yaml.Node | None, reason: str) -> SloFileError:
        line = node.start_mark.line + 1 if node is not None else 1
        return SloFileError(f"{self.path}:{line}: {reason}")

    def document(self, text: str) -> SloFile:
        try:
            root = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = mark.line + 1 if mark else 1
            raise SloFileError(f"{self.path}:{line}: not valid YAML: {exc.problem}") from exc
        if root is None:
            raise SloFileError(f"{self.path}:1: the file is empty; it needs a 'slos:' list")
        top = self.mapping(root, self.TOP, "the SLO file")
        if "version" in top and self.scalar(top["version"]) != "1":
            raise self.fail(top["version"], "unsupported version: this opsdrill reads version 1")
        if "slos" not in top:
            raise self.fail(root, "missing 'slos:': list the objectives there")
        slos = tuple(self.slo(node) for node in self.sequence(top["slos"], "slos"))
        if not slos:
            raise self.fail(top["slos"], "'slos' is empty: declare at least one objective")
        self.unique(top["slos"], slos)
        policy: tuple[BurnAlert, ...] = DEFAULT_POLICY
        if "alerting" in top:
            policy = tuple(self.alert(n) for n in self.sequence(top["alerting"], "alerting"))
        for slo in slos:
            self.check_policy(slo, policy, top.get("alerting"))
        return SloFile(
            self.path,
            self.text(top["service"], "service") if "service" in top else "ts-forecast",
            self.text(top["job"], "job") if "job" in top else "ts-forecast-app",
            slos,
            policy,
            self.gate(top["gate"]) if "gate" in top else Gate(),
        )

    def gate(self, node: yaml.Node) -> Gate:
        item = self.mapping(node, self.GATE_KEYS, "the gate")
        value: dict[str, float] = {k: self.objective(item[k], k) for k in
                                   ("confidence", "min_rate", "max_late") if k in item}  # fmt: skip
        if "late_after" in item:
            value["late_after"] = self.duration(item["late_after"], "late_after")
        profiles: tuple[GateProfile, ...] = ()
        if "profiles" in item:
            nodes = self.sequence(item["profiles"], "profiles")
            profiles = tuple(self.profile(n) for n in nodes)
            seen: set[str] = set()
            for p, n in zip(profiles, nodes, strict=True):
                if p.name in seen:
                    raise self.fail(n, f"duplicate gate profile name {p.name!r}")
                seen.add(p.name)
        d = Gate()
        return Gate(
            confidence=value.get("confidence", d.confidence),
            min_rate=value.get("min_rate", d.min_rate),
            late_after=value.get("late_after", d.late_after),
            max_late=value.get("max_late", d.max_late),
            profiles=profiles,
        )

    def profile(self, node: yaml.Node) -> GateProfile:
        item = self.mapping(node, self.PROFILE_KEYS, "a gate profile")
        for key in ("name", "rate", "duration"):
            if key not in item:
                raise self.fail(node, f"gate profile is missing '{key}'")
        rate = self.number(item["rate"], "rate")
        if rate <= 0:
            raise self.fail(item["rate"], f"'rate' must be > 0 requests/s, got {rate:g}")
        spans = {k: self.duration(item[k], k) for k in ("duration", "ramp", "timeout",
                 "run_interval", "run_wait") if k in item}  # fmt: skip
        return GateProfile(
            name=self.text(item["name"], "name"),
            rate=rate,
            mix=self.mix(item["mix"]) if "mix" in item else (),
            description=self.text(item["description"], "description")
            if "description" in item
            else "",
            line=node.start_mark.line + 1,
            **spans,  # type: ignore[arg-type]
        )

    def mix(self, node: yaml.Node) -> tuple[tuple[str, float], ...]:
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, "'mix' must map request kinds to shares (forecast:cold: 80%)")
        out = []
        for key_node, value in node.value:
            kind = self.scalar(key_node)
            if kind not in ROUTES or kind == "runs:submit":
                kinds = ", ".join(k for k in ROUTES if k != "runs:submit")
                raise self.fail(key_node, f"unknown request kind {kind!r}; choose from {kinds}")
            out.append((kind, self.objective(value, f"share of {kind}", whole=True)))
        total = sum(share for _, share in out)
        if not math.isclose(total, 1.0, abs_tol=0.005):
            raise self.fail(node, f"the mix's shares add up to {total * 100:g} %, not 100 %")
        return tuple(out)

    def slo(self, node: yaml.Node) -> SLO:
        item = self.mapping(node, self.SLO_KEYS, "an SLO")
        for key in ("name", "sli", "objective", "window"):
            if key not in item:
                raise self.fail(node, f"SLO is missing '{key}'")
        name = self.text(item["name"], "name")
        if not re.fullmatch(r"[a-z][a-z0-9-]*", name):
            raise self.fail(item["name"], f"SLO name {name!r} must be lower-case kebab-case")
        sli = self.text(item["sli"], "sli")
        if sli not in SLI_KINDS:
            raise self.fail(item["sli"], f"unknown sli {sli!r}: choose {', '.join(SLI_KINDS)}")
        threshold = None
        if sli == "latency":
            if "threshold" not in item:
                raise self.fail(node, f"latency SLO {name!r} needs a 'threshold' (e.g. 500ms)")
            threshold = self.duration(item["threshold"], "threshold")
        elif "threshold" in item:
            raise self.fail(item["threshold"], f"'threshold' only applies to latency SLOs, "
                                               f"not to {sli}")  # fmt: skip
        paths: tuple[str, ...] = ()
        if "paths" in item:
            paths = tuple(self.text(p, "path") for p in self.sequence(item["paths"], "paths"))
            for p, pnode in zip(paths, self.sequence(item["paths"], "paths"), strict=True):
                if not p.startswith("/"):
                    raise self.fail(pnode, f"path {p!r} must be a route template like /predict")
        return SLO(
            name=name,
            sli=sli,
            objective=self.objective(item["objective"]),
            window=self.duration(item["window"], "window"),
            threshold=threshold,
            paths=paths,
            description=self.text(item["description"], "description")
            if "description" in item
            else "",
            line=node.start_mark.line + 1,
        )

    def alert(self, node: yaml.Node) -> BurnAlert:
        item = self.mapping(node, self.ALERT_KEYS, "an alerting rule")
        for key in sorted(self.ALERT_KEYS):
            if key not in item:
                raise self.fail(node, f"alerting rule is missing '{key}'")
        severity = self.text(item["severity"], "severity")
        burn = self.number(item["burn_rate"], "burn_rate")
        if burn <= 0:
            raise self.fail(item["burn_rate"], f"burn_rate must be > 0, got {burn:g}")
        long, short = (self.duration(item[k], k) for k in ("long", "short"))
        if short >= long:
            raise self.fail(item["short"], "the short window must be shorter than the long one")
        return BurnAlert(severity, burn, long, short)

    def check_policy(self, slo: SLO, policy: tuple[BurnAlert, ...], node: Any) -> None:
        for rule in policy:
            if rule.burn_rate * slo.error_budget >= 1:
                raise self.fail(
                    node,
                    f"burn rate {rule.burn_rate:g}× can never be reached by SLO {slo.name!r} "
                    f"(budget {slo.error_budget * 100:g} %: the error ratio would have to "
                    f"exceed 100 %); lower it below {1 / slo.error_budget:g}",
                )

    def unique(self, node: yaml.Node, slos: tuple[SLO, ...]) -> None:
        seen: set[str] = set()
        for slo, child in zip(slos, node.value, strict=True):
            if slo.name in seen:
                raise self.fail(child, f"duplicate SLO name {slo.name!r}")
            seen.add(slo.name)

    # -- typed scalars ---------------------------------------------------------------------
    def mapping(self, node: yaml.Node, allowed: frozenset[str], what: str) -> dict[str, yaml.Node]:
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, f"{what} must be a mapping of keys to values")
        out: dict[str, yaml.Node] = {}
        for key_node, value in node.value:
            key = self.scalar(key_node)
            if key not in allowed:
                raise self.fail(key_node, f"unknown key {key!r} in {what}; allowed: "
                                          f"{', '.join(sorted(allowed))}")  # fmt: skip
            if key in out:
                raise self.fail(key_node, f"key {key!r} given twice")
            out[key] = value
        return out

    def sequence(self, node: yaml.Node, what: str) -> list[yaml.Node]:
        if not isinstance(node, yaml.SequenceNode):
            raise self.fail(node, f"'{what}' must be a list")
        return list(node.value)

    def scalar(self, node: yaml.Node) -> str:
        if not isinstance(node, yaml.ScalarNode):
            raise self.fail(node, "expected a single value here, not a list or mapping")
        return str(node.value)

    def text(self, node: yaml.Node, what: str) -> str:
        value = self.scalar(node).strip()
        if not value:
            raise self.fail(node, f"'{what}' is empty")
        return value

    def number(self, node: yaml.Node, what: str) -> float:
        return self.convert(node, what, float, "a number")

    def duration(self, node: yaml.Node, what: str) -> float:
        return self.convert(node, what, parse_duration, "a duration like 500ms, 5m, 30d")

    def objective(self, node: yaml.Node, what: str = "objective", whole: bool = False) -> float:
        """A share: 0.999 or 99.9%, strictly between 0 and 1 (up to 1 itself when `whole`)."""
        raw = self.scalar(node).strip()
        try:
            value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
        except ValueError:
            value = math.nan
        if not (0 < value <= 1 if whole else 0 < value < 1):
            bounds = "0 (exclusive) and 1" if whole else "0 and 1"
            raise self.fail(node, f"{what} {raw!r} must be a share between {bounds} "
                                  f"(0.999) or a percentage (99.9%)"
                                  + ("" if whole else ", exclusive"))  # fmt: skip
        return value

    def convert(self, node: yaml.Node, what: str, fn: Callable[[str], float], hint: str) -> float:
        raw = self.scalar(node)
        try:
            return fn(raw)
        except ValueError:
            raise self.fail(node, f"'{what}' must be {hint}, got {raw!r}") from None
