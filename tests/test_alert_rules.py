"""The production Prometheus files pass promtool, and promtool's rule tests can actually fail.

A rule test suite that passes whatever the rules say proves nothing, so the second half feeds
promtool deliberately broken copies of alerts.yml (a typo'd metric, the runbook's own defects)
and expects its unit tests to catch each one.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

PROMETHEUS_DIR = Path(__file__).resolve().parents[1] / "system" / "prometheus"
RUNBOOK_ALERTS = (
    "ServiceDown",
    "DatabaseDown",
    "HighErrorRate",
    "HighMemoryUsage",
    "HighDiskUsage",
    "LongRunningJob",
    "QueueBacklog",
)

pytestmark = pytest.mark.skipif(
    shutil.which("promtool") is None,
    reason="promtool is not on PATH: install Prometheus (Debian: apt install prometheus)",
)


def promtool(*args: str, cwd: Path = PROMETHEUS_DIR) -> subprocess.CompletedProcess[str]:
    """Run promtool and keep its output for the assertion message."""
    return subprocess.run(
        ["promtool", *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


def alert_rules() -> list[dict]:
    groups = yaml.safe_load((PROMETHEUS_DIR / "alerts.yml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_prometheus_config_is_valid() -> None:
    result = promtool("check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_rules_are_valid() -> None:
    result = promtool("check", "rules", "alerts.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_rule_unit_tests_pass() -> None:
    result = promtool("test", "rules", "tests/alerts_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_runbook_alert_exists_with_runbook_id_severity_and_text() -> None:
    rules = alert_rules()
    assert set(RUNBOOK_ALERTS) <= {rule["alert"] for rule in rules}
    for rule in rules:
        assert re.fullmatch(r"\d+\.\d+\.\d+", rule["annotations"]["runbook"]), rule["alert"]
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]


def test_every_alert_has_unit_tests() -> None:
    tests = yaml.safe_load((PROMETHEUS_DIR / "tests" / "alerts_test.yml").read_text())["tests"]
    tested = {case["alertname"] for test in tests for case in test.get("alert_rule_test", [])}
    assert {rule["alert"] for rule in alert_rules()} <= tested


BROKEN_RULES = {
    "typo in the metric name": (
        'rate(http_requests_total{job="ts-forecast-app", status=~"5.."}',
        'rate(http_request_total{job="ts-forecast-app", status=~"5.."}',
        "HighErrorRate",
    ),
    "runbook defect: DatabaseDown watches only the exporter": (
        'pg_up{job="postgres"} == 0 or up{job="postgres"} == 0',
        'up{job="postgres"} == 0',
        "DatabaseDown",
    ),
    "runbook defect: 5xx rate per second instead of a ratio": (
        '(sum by (job, instance) (rate(http_requests_total{job="ts-forecast-app"}[5m])) > 0)',
        "1",
        "HighErrorRate",
    ),
    "pseudo filesystems no longer excluded": (
        'fstype!~"tmpfs|ramfs|devtmpfs|overlay|squashfs|iso9660|nsfs|autofs|fuse\\\\..*"',
        'fstype!~"devtmpfs"',
        "HighDiskUsage",
    ),
    "wrong threshold": (
        'ts_forecast_queued_runs{job="ts-forecast-app"} > 50',
        'ts_forecast_queued_runs{job="ts-forecast-app"} > 60',
        "QueueBacklog",
    ),
    "wrong for": ("for: 2m", "for: 3m", "ServiceDown"),
}


@pytest.mark.parametrize("change", BROKEN_RULES.values(), ids=BROKEN_RULES.keys())
def test_unit_tests_catch_a_broken_rule(tmp_path: Path, change: tuple[str, str, str]) -> None:
    before, after, alert = change
    rules = (PROMETHEUS_DIR / "alerts.yml").read_text()
    assert before in rules, "the mutation no longer applies: update BROKEN_RULES"
    (tmp_path / "alerts.yml").write_text(rules.replace(before, after))
    (tmp_path / "tests").mkdir()
    shutil.copy(PROMETHEUS_DIR / "tests" / "alerts_test.yml", tmp_path / "tests")
    assert promtool("check", "rules", "alerts.yml", cwd=tmp_path).returncode == 0, "still valid"

    result = promtool("test", "rules", "tests/alerts_test.yml", cwd=tmp_path)

    assert result.returncode != 0, f"promtool test rules missed: {before!r} → {after!r}"
    assert f"alertname: {alert}" in result.stdout + result.stderr
