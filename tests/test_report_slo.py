"""The SLO section of the report and the summary: every profile's verdicts with the evidence
they rest on (bound, events, events needed), and the older one-run slo.json still read.

The rows below are what the evidence-sized gate (`opsdrill.load.gate_json`, branch `slo`)
wrote for 3000 /health requests with 0 bad (mix), 9 bad (cache-cold: BREACHED) and 1 bad of
2000 (INCONCLUSIVE); only the fields the readers use are kept.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from opsdrill.report import build_report
from opsdrill.report.slo_view import gate_runs
from opsdrill.report.summary import slo_data, slo_lines


def row(profile: str, verdict: str, bad: int, total: int, **kw: Any) -> dict[str, Any]:
    bounds = kw.pop("bounds", "0 %–0.0998 %")
    good = (1 - bad / total) * 100 if total else 100.0
    return {
        "slo": "api-success", "verdict": verdict, "objective": "success ratio ≥ 99.9 % over 30d",
        "measured": f"{good:.3f} % good ({bad} bad of {total}); 95 % bounds on bad {bounds} "
                    "(budget 0.1 %)",
        "bad": bad, "total": total, "budget": "api-success: burn rate 0×", "error_budget": 0.001,
        "confidence": 0.95, "lower": 0.0, "upper": 0.0009980790119965865, "needed": 2995,
        "expected": total, "sized": True, "note": "", "profile": profile, **kw,
    }  # fmt: skip


def run(profile: str, verdict: str, slos: list[dict[str, Any]], **kw: Any) -> dict[str, Any]:
    return {"profile": profile, "verdict": verdict, "target_rate": 30, "achieved_rate": 30,
            "target_count": 3000, "achieved_count": 3000, "late_count": 0, "duration_s": 100,
            "load_problem": "", "slos": slos, **kw}  # fmt: skip


SKIPPED = {
    "slo": "training-completion", "verdict": "SKIPPED", "objective": "completion ≥ 98 % over 7d",
    "measured": "no training runs submitted", "bad": 0, "total": 0, "budget": "", "lower": 0.0,
    "upper": 1.0, "confidence": 0.95, "error_budget": 0.02, "needed": 149,
    "note": "this profile submits no training runs: not exercised", "profile": "mix",
}  # fmt: skip
MIX = run("mix", "PASS", [row("mix", "MET", 0, 3000), SKIPPED])
COLD = run("cache-cold", "FAIL", [
    row("cache-cold", "BREACHED", 9, 3000, lower=0.0015619, upper=0.0052,
        bounds="0.156 %–0.52 %"),
])  # fmt: skip
SMALL = run("small", "INCONCLUSIVE", [
    row("small", "INCONCLUSIVE", 1, 2000, upper=0.00237, needed=11529,
        note="not enough evidence: 11529 events needed at the observed bad ratio 0.05 %",
        bounds="0 %–0.237 %"),
], target_count=2000, achieved_count=2000)  # fmt: skip
GATE = {**MIX, "profiles": {"mix": MIX, "cache-cold": COLD, "small": SMALL},
        "gate_verdict": "FAIL"}  # fmt: skip


def page_of(tmp_path: Path, slo: dict[str, Any]) -> str:
    out = tmp_path / "gameday-slo" / "load" / "load"
    out.mkdir(parents=True)
    (out / "slo.json").write_text(json.dumps(slo))
    return build_report(tmp_path / "gameday-slo").read_text()


def cells(page: str, slo: str) -> list[list[str]]:
    """The text of each table row about `slo`, cell by cell, tags stripped."""
    found = []
    for tr in re.findall(r"<tr>(.*?)</tr>", page):
        tds = [re.sub(r"<[^>]+>", " ", td).strip() for td in re.findall(r"<td[^>]*>(.*?)</td>", tr)]
        if tds and tds[0] == slo:
            found.append(tds)
    return found


def test_every_profile_shows_verdict_ratio_bound_and_events(tmp_path: Path) -> None:
    page = page_of(tmp_path, GATE)
    assert "Load gate <b class='fail'>FAIL</b> over 3 profiles" in page, "the worst profile"
    for name in ("mix", "cache-cold", "small"):
        assert f"<h3>Profile {name}</h3>" in page
    met, breached, inconclusive = cells(page, "api-success")
    assert met[2:6] == ["MET", "100.000 %", "bad ≤ 0.100 % at 95 % (budget 0.100 %)",
                        "0 bad of 3000"]  # fmt: skip
    assert breached[2:6] == ["BREACHED", "99.700 %", "bad ≥ 0.156 % at 95 % (budget 0.100 %)",
                             "9 bad of 3000"]  # fmt: skip
    bound = "bad ≤ 0.237 % at 95 % (budget 0.100 %)"
    assert inconclusive[2:6] == ["INCONCLUSIVE", "99.950 %", bound, "1 bad of 2000"]
    assert "11529 events needed" in inconclusive[6]
    assert "bounds on bad" not in page, "the bound has its own column, not repeated in measured"
    assert "<td class='pass'>MET</td>" in page and "<td class='fail'>BREACHED</td>" in page
    assert "<td class='skip'>INCONCLUSIVE</td>" in page, "not judged is amber, not green"


def test_needed_events_are_shown_only_when_inconclusive(tmp_path: Path) -> None:
    page = page_of(tmp_path, GATE)
    [met, *_] = cells(page, "api-success")
    assert "needed" not in met[6], "a MET verdict needs no more events"
    [skipped] = cells(page, "training-completion")
    assert skipped[2] == "SKIPPED" and skipped[4] == "–", "no events: nothing bounded"
    assert "not exercised" in skipped[6]


def test_the_gate_without_profiles_reads_its_top_level_run(tmp_path: Path) -> None:
    page = page_of(tmp_path, MIX)
    assert "<h3>Profile" not in page, "one run: no per-profile headings"
    assert "profile <code>mix</code>" in page
    [met] = cells(page, "api-success")
    assert met[2] == "MET" and met[3] == "100.000 %"


def test_the_older_one_run_format_still_reads(tmp_path: Path) -> None:
    old = {"verdict": "FAIL", "achieved_rate": 20.0, "target_rate": 20.0, "achieved_count": 400,
           "target_count": 400, "duration_s": 20,
           "slos": [{"slo": "api-success", "verdict": "FAIL", "objective": "99.9 %",
                     "measured": "99.000 % good (4 bad of 400)", "bad": 4, "total": 400,
                     "budget": "burn rate 10×"}]}  # fmt: skip
    page = page_of(tmp_path, old)
    [fail] = cells(page, "api-success")
    assert fail[2:6] == ["FAIL", "99.000 %", "–", "4 bad of 400"], "no bound in the old file"
    assert "<td class='fail'>FAIL</td>" in page and "burn rate 10×" in page


def test_the_summary_has_the_same_verdicts_and_evidence() -> None:
    lines = slo_lines(GATE)
    text = "\n".join(lines)
    assert "Load gate **FAIL**" in text
    assert "Profile `cache-cold`: FAIL" in text and "Profile `small`: INCONCLUSIVE" in text
    assert ("| api-success | success ratio ≥ 99.9 % over 30d | BREACHED | 99.700 % | "
            "bad ≥ 0.156 % at 95 % (budget 0.100 %) | 9 bad of 3000 | – |") in lines  # fmt: skip
    [small] = [x for x in lines if "| INCONCLUSIVE |" in x]
    assert "1 bad of 2000" in small and "11529 events needed" in small
    data = slo_data(GATE)
    assert data is not None and data["gate_verdict"] == "FAIL"
    assert [p["profile"] for p in data["profiles"]] == ["mix", "cache-cold", "small"]
    [cold_row] = data["profiles"][1]["rows"]
    assert cold_row["verdict"] == "BREACHED" and cold_row["lower"] == 0.0015619
    json.dumps(data)  # summary.json must be able to hold it
    assert slo_lines(None) == [] and slo_data({}) is None


def test_a_malformed_row_reads_as_unknown_not_a_traceback() -> None:
    [g] = gate_runs({"verdict": "PASS", "slos": [{"slo": "x", "bad": "many", "total": None}, 3]})
    [r] = g.rows
    assert (r.bad, r.total, r.good_ratio, r.bound, r.events) == (None, None, None, "–", "–")
