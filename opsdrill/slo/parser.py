"""slo.yaml read into `SloFile`: every value checked, a malformed file refused with
`file:line: reason` (the YAML node's own line)."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from opsdrill.slo.model import (
    DEFAULT_POLICY,
    SLI_KINDS,
    SLO,
    BurnAlert,
    Gate,
    GateProfile,
    SloFile,
    SloFileError,
    parse_duration,
)
from opsdrill.stack.routes import ROUTES

__all__ = ["load_slo_file", "parse_slo_text"]


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
