"""The committed SLO rules are what slo.yaml gives, promtool accepts them, and their tests pass.

The generated promtool tests feed each alerting row 1.05× and 0.95× its burn rate; the last
test here proves they can fail, by running them against rules generated with a higher rate.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from opsdrill.slo import rules as slo_rules
from opsdrill.slo.parser import load_slo_file, parse_slo_text

ROOT = Path(__file__).resolve().parents[1]
PROM = ROOT / "system" / "prometheus"
needs_promtool = pytest.mark.skipif(
    shutil.which("promtool") is None,
    reason="promtool is not on PATH: install Prometheus (Debian: apt install prometheus)",
)


def promtool(*args: str, cwd: Path = PROM) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["promtool", *args], cwd=cwd, capture_output=True, text=True, timeout=300, check=False
    )


def test_committed_rules_are_current() -> None:
    slo_file = load_slo_file(ROOT / "slo.yaml")
    regenerate = "python -m opsdrill.slo.rules slo.yaml > system/prometheus/slo_rules.yml"
    assert (PROM / "slo_rules.yml").read_text() == slo_rules.render_rules(slo_file), regenerate


def test_committed_rule_tests_are_current() -> None:
    slo_file = load_slo_file(ROOT / "slo.yaml")
    assert (PROM / "tests" / "slo_rules_test.yml").read_text() == slo_rules.render_tests(
        slo_file
    ), "python -m opsdrill.slo.rules slo.yaml --tests > system/prometheus/tests/slo_rules_test.yml"


def test_page_thresholds_follow_the_workbook() -> None:
    rules = yaml.safe_load((PROM / "slo_rules.yml").read_text())
    alerts = [r for g in rules["groups"] for r in g["rules"] if "alert" in r]
    api = [a for a in alerts if a["labels"]["slo"] == "api-success"]
    assert [(a["labels"]["severity"], a["labels"]["burn_rate"]) for a in api] == [
        ("page", "14.4"),
        ("page", "6"),
        ("ticket", "1"),
    ]
    assert 'slo:sli_error:ratio_rate1h{slo="api-success"} > 0.0144' in api[0]["expr"]
    assert 'slo:sli_error:ratio_rate5m{slo="api-success"} > 0.0144' in api[0]["expr"]
    assert "ratio_rate6h" in api[1]["expr"] and "ratio_rate30m" in api[1]["expr"]
    assert "ratio_rate3d" in api[2]["expr"] and "ratio_rate6h" in api[2]["expr"]


def test_latency_rule_reads_the_threshold_bucket_of_prediction_routes() -> None:
    text = (PROM / "slo_rules.yml").read_text()
    assert 'le="0.5"' in text
    assert 'path=~"/predict|/forecast/\\\\{series_id\\\\}"' in text


def test_cli_prints_rules_and_rejects_a_bad_file(tmp_path: Path) -> None:
    import sys

    ok = subprocess.run(
        [sys.executable, "-m", "opsdrill.slo.rules", str(ROOT / "slo.yaml")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert ok.returncode == 0 and "ErrorBudgetBurn" in ok.stdout
    bad = tmp_path / "slo.yaml"
    bad.write_text("slos:\n  - name: x\n    sli: latency\n    objective: 95%\n    window: 1d\n")
    out = subprocess.run(
        [sys.executable, "-m", "opsdrill.slo.rules", str(bad)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert out.returncode == 2
    assert f"{bad}:2: latency SLO 'x' needs a 'threshold'" in out.stderr


@needs_promtool
def test_promtool_accepts_the_rules() -> None:
    result = promtool("check", "rules", "slo_rules.yml")
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_promtool_unit_tests_pass() -> None:
    result = promtool("test", "rules", "tests/slo_rules_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_unit_tests_catch_a_wrong_threshold(tmp_path: Path) -> None:
    """Rules paging at 16× instead of 14.4× must fail the tests written for 14.4×."""
    text = (ROOT / "slo.yaml").read_text()
    wrong = parse_slo_text(text.replace("burn_rate: 14.4", "burn_rate: 16"), "slo.yaml")
    right = load_slo_file(ROOT / "slo.yaml")
    (tmp_path / "slo_rules.yml").write_text(slo_rules.render_rules(wrong))
    tests = slo_rules.tests(right, rule_file="slo_rules.yml")
    tests["tests"] = [t for t in tests["tests"] if "row 14.4x" in t["name"]]
    (tmp_path / "t.yml").write_text(yaml.safe_dump(tests, allow_unicode=True))
    result = promtool("test", "rules", "t.yml", cwd=tmp_path)
    assert result.returncode != 0
    assert "ApiSuccessErrorBudgetBurn" in result.stdout + result.stderr
