"""Runbook §4.2: the target's alert rules pass `promtool check rules` and the unit tests.

The rules are the ones the target's Prometheus is configured with, read where Prometheus runs
(this machine, its container, its host: `Target.files("prometheus")`); the unit tests are the
stack's (`system/prometheus/tests/alerts_test.yml`): for every alert, it fires once its `for`
has elapsed, stays silent below its threshold, and resolves.
"""

from __future__ import annotations

import glob
import json
import shutil
from pathlib import Path

import pytest
import yaml

from opsdrill.probes.prometheus import config_yaml, loaded_rules
from opsdrill.runbook import alert_rules
from opsdrill.runbook.alert_rules import alert_names, promtool_check, promtool_test
from opsdrill.targets.base import Target
from opsdrill.targets.files import ServiceFiles

TESTS_DIR = Path(__file__).resolve().parents[1] / "system/prometheus/tests"
#: each production rule file and the promtool unit tests that go with it
UNIT_TESTS = {
    "alerts.yml": TESTS_DIR / "alerts_test.yml",
    "slo_rules.yml": TESTS_DIR / "slo_rules_test.yml",
}


def unit_tests_for(path: str) -> Path:
    name = Path(path).name
    if name not in UNIT_TESTS:
        pytest.fail(f"rule file {path} has no unit tests: add it to UNIT_TESTS with its tests")
    return UNIT_TESTS[name]


pytestmark = [
    pytest.mark.runbook("4.2"),
    pytest.mark.readonly,
    pytest.mark.skipif(shutil.which("promtool") is None,
                       reason="promtool is not on PATH (Debian: apt install prometheus)"),
]  # fmt: skip


@pytest.fixture(scope="module")
def prometheus_files(target: Target) -> ServiceFiles:
    """The files where the target's Prometheus runs (its container, its host, this machine)."""
    if target.endpoints.prometheus_url is None:
        pytest.skip(f"target {target.name!r} has no prometheus_url")
    if "service_files" not in target.capabilities:
        pytest.skip(f"target {target.name!r} cannot read its services' files (service_files)")
    if "prometheus" not in target.services:
        pytest.skip(f"target {target.name!r} names no prometheus service to read the rules from")
    return target.files("prometheus")


@pytest.fixture(scope="module")
def rule_files(target: Target, prometheus_files: ServiceFiles) -> dict[str, str]:
    """path -> text of every rule file the target's Prometheus loads."""
    url = str(target.endpoints.prometheus_url)
    patterns = yaml.safe_load(config_yaml(url)).get("rule_files") or []
    files = {}
    for pattern in patterns:
        listed = prometheus_files.glob(pattern) if glob.has_magic(pattern) else [pattern]
        for path in listed:
            assert prometheus_files.exists(path), (
                f"Prometheus loads rule file {path}, which does not exist where it runs"
            )
            files[path] = prometheus_files.read_text(path)
    assert files, f"Prometheus at {url} loads no rule files (expected the §4.2 alerts)"
    return files


@pytest.fixture(scope="module")
def production_rules(rule_files: dict[str, str], prometheus_files: ServiceFiles) -> dict[str, str]:
    """The rule files with any recorded shortening (embedded stack) undone."""
    restored = {}
    for path, text in rule_files.items():
        shortened = []
        for folder in (Path(path).parent, Path(path).parent.parent):  # beside, or one up
            note = str(folder / "shortened.json")
            if prometheus_files.exists(note):
                shortened = [c for c in json.loads(prometheus_files.read_text(note))
                             if c.get("file", Path(path).name) == Path(path).name]  # fmt: skip
                break
        restored[path] = alert_rules.restore_durations(text, shortened)
    return restored


def test_promtool_check_rules(rule_files: dict[str, str]) -> None:
    for path, text in rule_files.items():
        result = promtool_check(text)
        assert result.ok, f"promtool check rules {path} failed: {result.output}; fix the rule"


def test_every_alert_has_a_unit_test(rule_files: dict[str, str]) -> None:
    for path, text in rule_files.items():
        tests = unit_tests_for(path)
        untested = alert_names(text) - alert_rules.tested_alerts(tests.read_text())
        assert not untested, (
            f"alert(s) of {path} without a unit test: {', '.join(sorted(untested))}; fix: add a "
            f"case to {tests} (fires after its for, silent below threshold, resolves)"
        )


@pytest.mark.parametrize(
    "rule_file",
    [
        "alerts.yml",
        # days-long burn-rate windows make promtool simulate days: ~10 s, too slow for a
        # smoke run every few minutes; the release gate runs it
        pytest.param("slo_rules.yml", marks=pytest.mark.slow),
    ],
)
def test_promtool_unit_tests_pass(production_rules: dict[str, str], rule_file: str) -> None:
    found = {p: t for p, t in production_rules.items() if Path(p).name == rule_file}
    if not found:
        pytest.skip(f"the target's Prometheus does not load {rule_file}")
    for path, text in found.items():
        result = promtool_test(text, unit_tests_for(path).read_text(), Path(path).name)
        assert result.ok, (
            f"promtool test rules fails for {path}: alert(s) "
            f"{', '.join(result.failing_alerts()) or '?'} do not behave as their unit tests "
            f"expect:\n{result.output[-1500:]}\nfix: correct the rule (a typo'd metric name "
            "never matches, so the alert can never fire)"
        )


def test_prometheus_loaded_every_rule_healthy(target: Target, rule_files: dict[str, str]) -> None:
    rules = loaded_rules(str(target.endpoints.prometheus_url))
    loaded = {r["name"] for r in rules if r["type"] == "alerting"}
    in_files = set().union(*(alert_names(t) for t in rule_files.values()))
    assert loaded == in_files, (
        f"Prometheus runs alerts {sorted(loaded)}, the rule files hold {sorted(in_files)}; "
        "fix: reload Prometheus (POST /-/reload or SIGHUP) after fixing the files"
    )
    broken = [f"{r['name']}: {r.get('lastError')}" for r in rules if r.get("health") == "err"]
    assert not broken, f"rules failing to evaluate: {'; '.join(broken)}"
