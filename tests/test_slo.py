"""slo.yaml parsing (errors name the line) and the error-budget arithmetic."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsdrill.slo import (
    SloFileError,
    format_duration,
    load_slo_file,
    parse_duration,
    parse_slo_text,
)

ROOT = Path(__file__).resolve().parents[1]
GOOD = """\
slos:
  - name: api-success
    sli: success_ratio
    objective: 99.9%
    window: 30d
"""


def test_the_project_slo_file_matches_runbook_2_3() -> None:
    f = load_slo_file(ROOT / "slo.yaml")
    got = {s.name: (s.sli, round(s.objective, 6), format_duration(s.window)) for s in f.slos}
    assert got == {
        "availability": ("availability", 0.99, "30d"),
        "api-success": ("success_ratio", 0.999, "30d"),
        "prediction-latency": ("latency", 0.95, "1d"),
        "training-completion": ("completion", 0.98, "7d"),
    }
    assert f.get("prediction-latency").threshold == 0.5
    assert [(a.severity, a.burn_rate) for a in f.policy] == [
        ("page", 14.4), ("page", 6.0), ("ticket", 1.0)
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (GOOD.replace("99.9%", "120%"), "slo.yaml:4: objective '120%' must be a share"),
        (GOOD.replace("30d", "thirty days"), "slo.yaml:5: 'window' must be a duration"),
        (GOOD.replace("success_ratio", "speed"), "slo.yaml:3: unknown sli 'speed'"),
        (GOOD.replace("    window: 30d\n", ""), "slo.yaml:2: SLO is missing 'window'"),
        (GOOD + "    colour: red\n", "slo.yaml:6: unknown key 'colour' in an SLO"),
        (GOOD.replace("sli: success_ratio", "sli: latency"), "slo.yaml:2: latency SLO"),
        (GOOD + GOOD.split("\n", 1)[1], "slo.yaml:6: duplicate SLO name 'api-success'"),
        ("slos: [\n", "slo.yaml:2: not valid YAML"),
        ("", "slo.yaml:1: the file is empty"),
        (GOOD + "alerting:\n  - {severity: page, burn_rate: 2000, long: 1h, short: 5m}\n",
         "slo.yaml:7: burn rate 2000× can never be reached"),
        (GOOD + "alerting:\n  - {severity: page, burn_rate: 2, long: 5m, short: 1h}\n",
         "slo.yaml:7: the short window must be shorter"),
    ],
)  # fmt: skip
def test_malformed_files_are_refused_with_line_and_reason(text: str, message: str) -> None:
    with pytest.raises(SloFileError) as info:
        parse_slo_text(text, "slo.yaml")
    assert str(info.value).startswith(message), str(info.value)


def test_missing_file_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SloFileError, match="cannot read the SLO file"):
        load_slo_file(tmp_path / "nope.yaml")


def test_durations_round_trip() -> None:
    assert parse_duration("500ms") == 0.5
    assert [format_duration(parse_duration(t)) for t in ("5m", "1h", "3d", "30d")] == [
        "5m", "1h", "3d", "30d"
    ]  # fmt: skip
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration("-1h")


def test_budget_burn_arithmetic() -> None:
    slo = parse_slo_text(GOOD).get("api-success")
    burn = slo.burn(bad=144, total=10_000, duration=3600)  # 1.44 % bad for an hour
    assert burn.burn_rate == pytest.approx(14.4)
    assert burn.budget_consumed == pytest.approx(0.02)  # the workbook's 2 % per hour
    assert burn.exhausted_in == pytest.approx(30 * 86400 / 14.4)
    assert "2 % of the 30d error budget" in burn.explain()
    calm = slo.burn(bad=0, total=100, duration=60)
    assert calm.burn_rate == 0 and "sustainable" in calm.explain()
