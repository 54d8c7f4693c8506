"""The game-day plan: which skips are expected on which machine, and why.

A game day that skipped a test did not show what that test shows, so it is INCOMPLETE — unless
the plan (`gameday.yaml` in the checkout, or `opsdrill gameday --plan-file FILE`) declares that
skip expected *here*: an entry matches the test's node id (and, if it says so, pytest's skip
message) and its condition is true on this machine when the game day runs. An entry whose
condition is false excuses nothing: on a machine with a GPU, the GPU drill has to run.

    version: 1
    expected_skips:
      - test: "chaos/test_gpu_oom.py::*"      # node id; * and ? are wildcards, nothing else
        when: no_cuda                          # one of CONDITIONS, evaluated on this machine
        skip_message: "*no CUDA*"              # optional: only a skip saying this is excused
        reason: no CUDA on this machine, so there is no GPU memory to exhaust
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from opsdrill.errors import UsageError
from opsdrill.faults.gpu_oom import cuda_available
from opsdrill.gameday.junit import SkippedTest
from opsdrill.load.gate import size_statement
from opsdrill.load.pytest_gate import default_slo_path
from opsdrill.slo.parser import load_slo_file
from opsdrill.stack.api import ApiClient

__all__ = ["CONDITIONS", "Conditions", "ExpectedSkip", "GameDayPlan", "JudgedSkip"]

PLAN_FILE = "gameday.yaml"


def _no_cuda(_machine: Conditions, _arg: str) -> bool:
    return not cuda_available()


def _api_not_https(machine: Conditions, _arg: str) -> bool:
    return urlsplit(machine.api_url).scheme != "https"


def _command_missing(_machine: Conditions, arg: str) -> bool:
    return shutil.which(arg) is None


def _no_ray(machine: Conditions, _arg: str) -> bool:
    """The app trains without Ray: its /health lists no `ray` component (docs/RAY.md)."""
    body = ApiClient(machine.api_url).health(timeout=5.0)
    if body is None:
        return False  # no answer is no evidence: the skip stays unexpected
    return "ray" not in (body.get("components") or {})


def _no_service(machine: Conditions, arg: str) -> bool:
    """The target runs no such service (the composed stack has no MLflow, Redis or Ray)."""
    return machine.services is not None and arg not in machine.services


def _no_capability(machine: Conditions, arg: str) -> bool:
    """The target does not offer a capability (opsdrill.targets.base.CAPABILITIES): a host
    with no Toxiproxy between its parts has no `toxiproxy`."""
    return machine.capabilities is not None and arg not in machine.capabilities


def _gate_too_small(_machine: Conditions, arg: str) -> bool:
    """`PROFILE:SLO`: the SLO file's gate profile gives too few events to ever say MET."""
    profile_name, _, slo_name = arg.partition(":")
    slos = load_slo_file(default_slo_path())
    profile = next((p for p in slos.gate.profiles if p.name == profile_name), None)
    return profile is not None and bool(
        size_statement(profile, slos.get(slo_name), slos.gate.confidence)
    )


#: condition name -> (what it means, as the summary says it; whether it takes an argument; test)
CONDITIONS: dict[str, tuple[str, bool, Callable[[Conditions, str], bool]]] = {
    "no_cuda": ("torch sees no CUDA device", False, _no_cuda),
    "api_not_https": ("the target's API is not served over https", False, _api_not_https),
    "command_missing": ("there is no '{arg}' command on PATH", True, _command_missing),
    "no_ray": ("the app trains without Ray (its /health lists no Ray cluster)", False, _no_ray),
    "no_service": ("the target runs no '{arg}' service", True, _no_service),
    "no_capability": ("the target does not offer the '{arg}' capability", True, _no_capability),
    "gate_too_small": (
        "slo.yaml's gate profile:SLO '{arg}' is too small to judge it",
        True,
        _gate_too_small,
    ),
}


class Conditions:
    """Evaluates plan conditions on this machine, each at most once per game day."""

    def __init__(
        self,
        api_url: str,
        services: Iterable[str] | None = None,
        capabilities: Iterable[str] | None = None,
    ) -> None:
        self.api_url = api_url
        #: the target's services and capabilities; None: unknown, so no_service and
        #: no_capability never hold
        self.services = frozenset(services) if services is not None else None
        self.capabilities = frozenset(capabilities) if capabilities is not None else None
        self._seen: dict[str, bool] = {}

    def holds(self, when: str) -> bool:
        if when not in self._seen:
            name, _, arg = when.partition(":")
            self._seen[when] = CONDITIONS[name][2](self, arg)
        return self._seen[when]


def describe(when: str) -> str:
    name, _, arg = when.partition(":")
    return CONDITIONS[name][0].format(arg=arg)


def _glob(pattern: str) -> re.Pattern[str]:
    """`*` any run of characters, `?` one; brackets are literal (they are in node ids)."""
    body = re.escape(pattern).replace(r"\*", ".*").replace(r"\?", ".")
    return re.compile(f"{body}\\Z", re.DOTALL)


@dataclass(frozen=True)
class ExpectedSkip:
    test: str
    when: str
    reason: str
    skip_message: str = "*"

    def matches(self, skip: SkippedTest) -> bool:
        return bool(_glob(self.test).match(skip.test)) and bool(
            _glob(self.skip_message).match(skip.message)
        )


@dataclass(frozen=True)
class JudgedSkip:
    suite: str
    test: str
    message: str  # pytest's reason for the skip
    expected: bool
    why: str  # the plan's reason when expected; otherwise why it is not excused


@dataclass
class GameDayPlan:
    expected: list[ExpectedSkip] = field(default_factory=list)
    source: str = "no plan file"

    @classmethod
    def load(cls, path: Path, *, required: bool = True) -> GameDayPlan:
        """Read and check a plan file; a missing default plan is an empty plan."""
        if not path.is_file():
            if required:
                raise UsageError(f"game-day plan {path} does not exist: give an existing file")
            return cls()
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            line = getattr(getattr(exc, "problem_mark", None), "line", -1) + 1
            raise UsageError(f"game-day plan {path} is not valid YAML (line {line}): "
                             "fix the file") from None  # fmt: skip
        if not isinstance(data, dict) or not isinstance(data.get("expected_skips", []), list):
            raise UsageError(f"game-day plan {path}: expected a mapping with a list "
                             "'expected_skips' (see gameday.yaml)")  # fmt: skip
        if unknown := sorted(set(data) - {"version", "expected_skips"}):
            raise UsageError(f"game-day plan {path}: unknown key(s) {', '.join(unknown)}; "
                             "allowed: version, expected_skips")  # fmt: skip
        if data.get("version", 1) != 1:
            raise UsageError(f"game-day plan {path}: version {data['version']!r} is not "
                             "supported; write version: 1")  # fmt: skip
        entries = [_entry(path, i, e) for i, e in enumerate(data.get("expected_skips") or [], 1)]
        return cls(entries, str(path))

    def judge(self, suite: str, skip: SkippedTest, here: Conditions) -> JudgedSkip:
        """Expected only if an entry matches and its condition is true on this machine."""
        matching = [e for e in self.expected if e.matches(skip)]
        for entry in matching:
            if here.holds(entry.when):
                return JudgedSkip(suite, skip.test, skip.message, True, entry.reason)
        if matching:
            why = "; ".join(f"the plan expects it only when {describe(e.when)}, which is not "
                            "so on this machine" for e in matching)  # fmt: skip
        else:
            why = f"not declared in the game-day plan ({self.source})"
        return JudgedSkip(suite, skip.test, skip.message, False, why)


def _entry(path: Path, index: int, raw: Any) -> ExpectedSkip:
    where = f"game-day plan {path}, expected skip #{index}"
    if not isinstance(raw, dict) or not all(isinstance(raw.get(k), str) and raw[k].strip()
                                            for k in ("test", "when", "reason")):  # fmt: skip
        raise UsageError(f"{where}: needs 'test', 'when' and 'reason', each a non-empty string")
    unknown = sorted(set(raw) - {"test", "when", "reason", "skip_message"})
    if unknown:
        raise UsageError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: test, when, "
                         "reason, skip_message")  # fmt: skip
    name, colon, arg = raw["when"].partition(":")
    if name not in CONDITIONS:
        raise UsageError(f"{where}: unknown condition {raw['when']!r}; choose from "
                         f"{', '.join(_spell(n) for n in CONDITIONS)}")  # fmt: skip
    if CONDITIONS[name][1] != bool(colon and arg):
        raise UsageError(f"{where}: write the condition as {_spell(name)}")
    return ExpectedSkip(raw["test"], raw["when"], raw["reason"].strip(),
                        str(raw.get("skip_message", "*")))  # fmt: skip


def _spell(name: str) -> str:
    return f"{name}:<name>" if CONDITIONS[name][1] else name
