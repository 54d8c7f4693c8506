"""Threshold table (§4.1.2) and the pure helpers behind the checks, without a stack."""

from __future__ import annotations

import pytest

from opsdrill.probes.metrics_text import parse
from opsdrill.runbook import alert_rules
from opsdrill.runbook.thresholds import RUNBOOK_ROWS, THRESHOLDS, Level, evaluate


def test_the_runbook_table_is_all_there() -> None:
    assert RUNBOOK_ROWS == ("cpu", "memory", "disk", "api_p95", "error_rate", "active_runs",
                            "db_connections")  # fmt: skip
    assert (THRESHOLDS["disk"].warning_above, THRESHOLDS["disk"].critical_above) == (85, 95)


@pytest.mark.parametrize(
    ("key", "value", "level"),
    [("disk", 50, Level.NORMAL), ("disk", 82, Level.ELEVATED), ("disk", 90, Level.WARNING),
     ("disk", 96, Level.CRITICAL), ("api_p95", 1.5, Level.WARNING), ("cpu", 80, Level.ELEVATED)],
)  # fmt: skip
def test_evaluate_levels(key: str, value: float, level: Level) -> None:
    assert evaluate(key, value).level is level


def test_messages_distinguish_warning_from_critical() -> None:
    warning, critical = evaluate("memory", 90, "host").message, evaluate("memory", 97).message
    assert warning.startswith("WARNING: memory usage of host is 90.0 %")
    assert critical.startswith("CRITICAL:") and "critical above 95.0 %" in critical
    assert "fix:" in warning


def test_override_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPSDRILL_THRESHOLDS", '{"cpu": [98, 99]}')
    assert evaluate("cpu", 97).level is Level.ELEVATED
    assert "overridden" in evaluate("cpu", 99.5).message


def test_app_metrics_error_ratio_and_p95() -> None:
    text = (
        'http_requests_total{method="GET",path="/health",status="200"} 90\n'
        'http_requests_total{method="GET",path="/health",status="503"} 10\n'
        'http_request_duration_seconds_bucket{method="GET",path="/health",le="0.1"} 94\n'
        'http_request_duration_seconds_bucket{method="GET",path="/health",le="1.0"} 99\n'
        'http_request_duration_seconds_bucket{method="GET",path="/health",le="+Inf"} 100\n'
    )
    metrics = parse(text)
    assert metrics.error_ratio() == pytest.approx(0.1)
    assert metrics.p95_seconds() == 1.0


def test_restore_durations_undoes_shortening() -> None:
    short = ("groups:\n- name: g\n  rules:\n  - alert: A\n    expr: rate(x[5s]) > 1\n"
             "    for: 2s\n")  # fmt: skip
    shortened = [{"alert": "A", "field": "for", "before": "2m", "after": "2s"},
                 {"alert": "A", "field": "range", "before": "5m", "after": "5s"}]  # fmt: skip
    restored = alert_rules.restore_durations(short, shortened)
    assert "rate(x[5m])" in restored and "for: 2m" in restored
