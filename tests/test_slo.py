"""slo.yaml parsing (errors name the line) and the error-budget arithmetic."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsdrill.slo.model import SloFileError, format_duration, parse_duration
from opsdrill.slo.parser import load_slo_file, parse_slo_text

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


# -- evidence: one-sided Clopper–Pearson bounds ------------------------------------------------
def test_bounds_match_the_closed_forms() -> None:
    from opsdrill.load.evidence import lower_bound, upper_bound

    for n in (10, 299, 2995):  # 0 of n: the upper bound solves (1 - p)^n = 0.05
        assert upper_bound(0, n) == pytest.approx(1 - 0.05 ** (1 / n), rel=1e-9)
        assert lower_bound(0, n) == 0.0
    # 1 of 10: the lower bound solves 1 - (1 - p)^10 = 0.05; the upper is the textbook 0.3942
    assert lower_bound(1, 10) == pytest.approx(1 - 0.95 ** (1 / 10), rel=1e-9)
    assert upper_bound(1, 10) == pytest.approx(0.39416, abs=1e-5)
    assert lower_bound(10, 10) == pytest.approx(0.05 ** (1 / 10), rel=1e-9)
    assert upper_bound(0, 0) == 1.0 and upper_bound(5, 5) == 1.0


@pytest.mark.parametrize(
    ("objective", "needed"),
    [(0.999, 2995), (0.99, 299), (0.95, 59), (0.98, 149)],  # ln 0.05 / ln(objective), rounded up
)
def test_events_needed_at_zero_bad(objective: float, needed: int) -> None:
    from opsdrill.load.evidence import events_needed, upper_bound

    budget = round(1 - objective, 12)
    assert events_needed(budget) == needed
    assert upper_bound(0, needed) <= budget < upper_bound(0, needed - 1)


def test_events_needed_grows_with_observed_bad_and_decides_both_ways() -> None:
    from opsdrill.load.evidence import events_needed, lower_bound, upper_bound

    assert events_needed(0.001, 1 / 4742) == 4742 and upper_bound(1, 4742) <= 0.001
    assert upper_bound(1, 4741) > 0.001
    over = events_needed(0.001, 0.002)  # twice the budget: n to show BREACHED
    assert over is not None and lower_bound(0.002 * over, over) > 0.001
    assert events_needed(0.001, 0.001) is None  # at the budget: no size can tell


def load_result(counts: dict[str, dict[str, int]], **kw: object):  # type: ignore[no-untyped-def]
    """A LoadResult as the runner builds it, from counts alone (no histogram needed)."""
    from opsdrill.load import LoadResult

    sent = sum(c["sent"] for c in counts.values())
    base: dict[str, object] = dict(
        target_rate=sent / 100, achieved_rate=sent / 100, target_count=sent, achieved_count=sent,
        duration=100.0, min_rate_ratio=0.95, complete=True, workers=1, endpoints={},
        counts=counts, mix={"health": 1.0}, profile="t",
    )  # fmt: skip
    return LoadResult(**{**base, **kw})  # type: ignore[arg-type]


def health(sent: int, bad: int = 0, late: int = 0) -> dict[str, dict[str, int]]:
    c = {"sent": sent, "achieved": sent, "ok": sent - bad, "transport": 0, "http5xx": bad,
         "http503": bad, "http4xx": 0, "http401": 0, "late": late}  # fmt: skip
    return {"health": c}


SUCCESS = parse_slo_text(GOOD)


def verdict_of(result, slo_file=SUCCESS):  # type: ignore[no-untyped-def]
    from opsdrill.load import judge

    result.verdicts = judge(result, slo_file)
    return result.verdicts[0]


def test_zero_bad_in_too_few_events_is_inconclusive_with_the_events_needed() -> None:
    from opsdrill.load import Verdict

    r = load_result(health(400))
    v = verdict_of(r)
    assert v.verdict is Verdict.INCONCLUSIVE and v.needed == 2995 and v.upper > 0.001
    assert "2995 events needed" in v.note and not v.sized
    assert r.verdict is Verdict.PASS, "an SLO the profile is too small for is stated, not failed"


def test_zero_bad_in_enough_events_is_met() -> None:
    from opsdrill.load import Verdict

    r = load_result(health(3000))
    v = verdict_of(r)
    assert v.verdict is Verdict.MET and v.upper <= 0.001 and v.sized, v.line()
    assert r.verdict is Verdict.PASS


def test_two_bad_in_3000_is_inconclusive_and_fails_the_run() -> None:
    from opsdrill.load import Verdict

    r = load_result(health(3000, bad=2))
    v = verdict_of(r)
    from opsdrill.load.evidence import upper_bound

    # at the observed ratio (1 in 1500) the bound needs 25 476 events to fall within 0.1 %
    assert v.verdict is Verdict.INCONCLUSIVE and v.needed == 25476, v.line()
    assert upper_bound(25476 / 1500, 25476) <= 0.001 < upper_bound(25475 / 1500, 25475)
    assert r.verdict is Verdict.INCONCLUSIVE and not r.passed


def test_bad_ratio_clearly_over_budget_is_breached() -> None:
    from opsdrill.load import Verdict

    r = load_result(health(3000, bad=12))  # 0.4 %: the lower bound is above 0.1 %
    v = verdict_of(r)
    assert v.verdict is Verdict.BREACHED and v.lower > 0.001, v.line()
    assert r.verdict is Verdict.FAIL and r.failed_slos() == ["api-success"]


def test_latency_bad_means_slower_than_the_threshold() -> None:
    from opsdrill.load import Verdict, hdr

    latency = parse_slo_text(
        "slos:\n  - {name: lat, sli: latency, objective: 95%, threshold: 500ms, window: 1d}\n"
    )
    hist = hdr.new_histogram()
    for _ in range(100):
        hdr.record(hist, 0.05)
    r = load_result(health(100), histograms={"health": hist})
    v = verdict_of(r, latency)
    assert (v.bad, v.verdict) == (0, Verdict.MET), v.line()  # 59 fast ones would do
    hdr.record(hist, 0.6)
    hdr.record(hist, 0.6)  # 2 of 102 slow: p95 is still 50 ms, but the bound reaches 6 %
    r = load_result(health(102), histograms={"health": hist})
    v = verdict_of(r, latency)
    assert v.bad == 2 and v.verdict is Verdict.INCONCLUSIVE and v.upper > 0.05, v.line()
    for _ in range(10):
        hdr.record(hist, 0.6)  # 12 of 112 slow (10.7 %): the lower bound is above 5 %
    r = load_result(health(112), histograms={"health": hist})
    v = verdict_of(r, latency)
    assert v.bad == 12 and v.verdict is Verdict.BREACHED, v.line()


# -- --slo: the file a session judges against ------------------------------------------------
def run_gate_collection(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    """`pytest load --collect-only` of this repository, from elsewhere, in a subprocess."""
    return pytester.runpytest_subprocess(
        str(ROOT / "load"), f"--rootdir={ROOT}", "-p", "no:cacheprovider", "--collect-only",
        "-q", *args,
    )  # fmt: skip


def test_malformed_slo_file_is_one_sentence_and_exit_2(pytester: pytest.Pytester) -> None:
    bad = pytester.path / "bad.yaml"
    bad.write_text(GOOD.replace("success_ratio", "speed"))
    result = run_gate_collection(pytester, "--slo", str(bad))
    assert result.ret == 2, result.stdout.str() + result.stderr.str()
    err = result.stderr.str().strip()
    assert err == (f"Exit: opsdrill: the SLO file is not usable: {bad}:3: unknown sli 'speed': "
                   "choose availability, success_ratio, latency, completion"), err  # fmt: skip
    assert "Traceback" not in result.stdout.str() + err


def test_slo_option_selects_the_file_and_its_profiles(pytester: pytest.Pytester) -> None:
    other = pytester.path / "other.yaml"
    other.write_text(GOOD + "gate:\n  profiles:\n    - {name: tiny, rate: 5, duration: 10s}\n")
    result = run_gate_collection(pytester, "--slo", str(other))
    assert result.ret == 0, result.stdout.str() + result.stderr.str()
    result.stdout.fnmatch_lines([
        "*test_load_as_configured[[]tiny[]]", "*test_slo[[]tiny:api-success[]]",
    ])  # fmt: skip
    assert "mix" not in result.stdout.str() and "cache-cold" not in result.stdout.str()


def test_gate_profile_errors_name_the_line() -> None:
    bad_kind = GOOD + "gate:\n  profiles:\n    - name: x\n      rate: 5\n      duration: 1m\n" \
        "      mix: {\"forecast:warm\": 100%}\n"  # fmt: skip
    with pytest.raises(SloFileError, match=r"slo.yaml:11: unknown request kind 'forecast:warm'"):
        parse_slo_text(bad_kind)
    with pytest.raises(SloFileError, match=r"slo.yaml:11: the mix's shares add up to 90 %"):
        parse_slo_text(bad_kind.replace('"forecast:warm": 100%', '"health": 90%'))
    with pytest.raises(SloFileError, match=r"slo.yaml:8: gate profile is missing 'duration'"):
        parse_slo_text(GOOD + "gate:\n  profiles:\n    - {name: x, rate: 5}\n")


def test_project_gate_can_judge_every_slo_but_the_ones_it_names() -> None:
    from opsdrill.load.gate import exercises, size_statement

    f = load_slo_file(ROOT / "slo.yaml")
    assert (f.gate.confidence, f.gate.min_rate, f.gate.max_late) == (0.95, 0.95, 0.01)
    unjudged = {
        (p.name, s.name)
        for p in f.gate.profiles
        for s in f.slos
        if exercises(p, s) and size_statement(p, s, f.gate.confidence)
    }
    # 149 training runs are beyond CI's time; the cache-cold profile's 1200 forecasts show
    # latency and availability, not 99.9 %
    assert unjudged == {("mix", "training-completion"), ("cache-cold", "api-success")}
    cold = f.gate.profile("cache-cold")
    assert {k for k, _ in cold.mix} == {"forecast:cold", "predict:cold"}
