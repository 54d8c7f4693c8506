"""Alert rules of a target, put through promtool with the stack's unit tests (runbook §4.2).

A target's rule file is read from its host (the path Prometheus was configured with). The
embedded stack runs the production rules with every `for:` and range window shortened and
records each change in `shortened.json` beside the rules; `restore_durations` undoes exactly
those changes, so the production unit tests (minutes, not seconds) judge the rules that run.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

#: an age in seconds compared with `time() - <timestamp metric>` (LongRunningJob's 7200):
#: a duration written as a number, so it is scaled with the `for`s and windows ("age")
AGE_THRESHOLD = re.compile(r"(time\(\)\s*-\s*[A-Za-z_:][\w:]*\s*(?:\{[^}]*\})?\s*>\s*)(\d+)\b")


__all__ = [
    "PromtoolResult",
    "alert_names",
    "promtool_check",
    "promtool_test",
    "restore_durations",
    "tested_alerts",
]


@dataclass(frozen=True)
class PromtoolResult:
    ok: bool
    output: str

    def failing_alerts(self) -> list[str]:
        """Alert names promtool's test output complains about."""
        return sorted(set(re.findall(r"alertname:\s*(\w+)", self.output)))


def alert_names(rules_text: str) -> set[str]:
    data = yaml.safe_load(rules_text) or {}
    return {r["alert"] for g in data.get("groups") or [] for r in g["rules"] if "alert" in r}


def tested_alerts(tests_text: str) -> set[str]:
    data = yaml.safe_load(tests_text) or {}
    return {c["alertname"] for t in data.get("tests") or [] for c in t.get("alert_rule_test", [])}


def _restore_age(expr: str, after: str, before: str) -> str:
    """`expr` with the age threshold `after` (seconds) put back to `before`."""

    def back(match: re.Match[str]) -> str:
        return match.group(1) + (before if match.group(2) == after else match.group(2))

    return AGE_THRESHOLD.sub(back, expr)


def restore_durations(rules_text: str, shortened: list[dict[str, Any]]) -> str:
    """Undo `shorten_rules`: put each recorded `for`/range/age duration back as it was."""
    data = yaml.safe_load(rules_text) or {}
    for group in data.get("groups") or []:
        for rule in group.get("rules") or []:
            name = rule.get("alert") or rule.get("record")
            for change in (c for c in shortened if c["alert"] == name):
                after, before = str(change["after"]), str(change["before"])
                if change["field"] == "for" and str(rule.get("for")) == after:
                    rule["for"] = before
                elif change["field"] == "age":
                    rule["expr"] = _restore_age(str(rule["expr"]), after, before)
                elif change["field"] == "range":
                    rule["expr"] = re.sub(rf"\[\s*{re.escape(after)}\s*\]", f"[{before}]",
                                          str(rule["expr"]))  # fmt: skip
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def _promtool(*args: str, cwd: Path) -> PromtoolResult:
    done = subprocess.run(["promtool", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=60, check=False)  # fmt: skip
    return PromtoolResult(done.returncode == 0, (done.stdout + done.stderr).strip())


def promtool_check(rules_text: str) -> PromtoolResult:
    """`promtool check rules` on the text (written to a temporary file)."""
    with tempfile.TemporaryDirectory(prefix="opsdrill-rules-") as tmp:
        (Path(tmp) / "alerts.yml").write_text(rules_text)
        return _promtool("check", "rules", "alerts.yml", cwd=Path(tmp))


def promtool_test(
    rules_text: str, tests_text: str, rules_name: str = "alerts.yml"
) -> PromtoolResult:
    """`promtool test rules` of `tests_text` (which names ../<rules_name>) against `rules_text`."""
    with tempfile.TemporaryDirectory(prefix="opsdrill-rules-") as tmp:
        (Path(tmp) / rules_name).write_text(rules_text)
        (Path(tmp) / "tests").mkdir()
        (Path(tmp) / "tests" / "rules_test.yml").write_text(tests_text)
        return _promtool("test", "rules", "rules_test.yml", cwd=Path(tmp) / "tests")
