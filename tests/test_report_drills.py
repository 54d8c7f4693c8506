"""The drills part of the report, the game-day summary and the incident record: how each drill
recovered (procedure, timed steps, MTTR by procedure, or that the stack rode it out), the
alert's MTTD apart from the probe's with its production-scale expectation, skipped detectors.

The incidents are written by the real drill runner with in-process faults (tests/
test_drill_runner.py's flag), so the readers are tested against what the runner writes.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from opsdrill.drill import Detector, DrillSpec, run_drill
from opsdrill.drill.alert_scale import ScaledRule
from opsdrill.drill.incident import Incident
from opsdrill.drill.procedure import Procedure
from opsdrill.faults.base import Fault
from opsdrill.report import build_report
from opsdrill.report.drills import RODE_IT_OUT, drill_view, mttr_by_procedure
from opsdrill.report.summary import drill_data, drill_lines
from tests.test_drill_runner import BROKEN, FIX, FlagFault, TransientFlag, _Home

SCALED = ScaledRule("FlagAlert", "1s", "1m")  # the embedded stack's `for:` vs production's
NO_PROM = "no Prometheus on this target"


def _spec(tmp: Path, name: str, recover: Procedure | None, fault: type[Fault]) -> DrillSpec:
    flag = lambda: BROKEN["flag"]  # noqa: E731
    return DrillSpec(
        name=name, title=f"{name}: a flag is set", runbook="5.2.2", severity="P3",
        fault=fault(_Home(tmp)),  # type: ignore[arg-type]
        effect=Detector("flag set", flag, 2),
        detectors=[
            Detector("FlagAlert", flag, 2, kind="alert", note=SCALED.note(),
                     production_offset=SCALED.offset),
            Detector("flag seen", flag, 2),
            Detector("FlagPage", flag, 2, kind="alert", skipped=NO_PROM),
        ],
        steady=[Detector("flag clear", lambda: not BROKEN["flag"], 1)],
        recover=recover, availability_url="http://127.0.0.1:9/health", recovery_timeout=1.0,
    )  # fmt: skip


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A game-day folder with three real drills: fixed by its procedure, ridden out, and a
    no-op procedure that leaves the fault (RECOVERY_INCOMPLETE)."""
    tmp = tmp_path_factory.mktemp("drills")
    out = tmp / "gameday-d" / "chaos"
    ridden = _spec(tmp, "b-ridden", None, TransientFlag)
    ridden.steady = [Detector("always fine", lambda: True, 1)]
    for spec in (_spec(tmp, "a-fixed", FIX, FlagFault), ridden,
                 _spec(tmp, "c-noop", FIX.without_effect(), FlagFault)):  # fmt: skip
        result = run_drill(spec, out)
        assert result.passed is (spec.name != "c-noop"), result.errors
    return out.parent


def incidents(run: Path) -> dict[str, Incident]:
    found = [Incident.read(p) for p in sorted(run.rglob("incidents/*.json"))]
    return {i.drill: i for i in found}


def row_of(page: str, first: str) -> list[str]:
    for tr in re.findall(r"<tr>(.*?)</tr>", page):
        tds = [re.sub(r"<[^>]+>", " ", td).strip() for td in re.findall(r"<td[^>]*>(.*?)</td>", tr)]
        if tds and tds[0] == first:
            return tds
    raise AssertionError(f"no table row starts with {first!r}")


def test_each_drill_names_its_procedure_or_that_the_stack_rode_it_out(run: Path) -> None:
    views = {n: drill_view(i) for n, i in incidents(run).items()}
    fixed, ridden, noop = views["a-fixed"], views["b-ridden"], views["c-noop"]
    assert fixed.procedure == "§5.2.2 fix: clear the flag" and fixed.recovered_by
    steps = [(s.step, s.status) for s in fixed.steps]
    assert steps == [("diagnose", "succeeded"), ("clear the flag", "succeeded")]
    assert all(s.duration is not None for s in fixed.steps)
    assert ridden.procedure == RODE_IT_OUT and ridden.rode_it_out and not ridden.steps
    assert "the flag is harmless by design" in ridden.recovered_by
    assert noop.procedure == fixed.procedure and not noop.recovered_by
    assert noop.mttr_seconds is None, "a procedure that did not recover has no MTTR"


def test_mttr_by_procedure_counts_only_what_the_procedure_recovered(run: Path) -> None:
    views = [drill_view(i) for i in incidents(run).values()]
    by = {p.procedure: p for p in mttr_by_procedure(views)}
    fix, rode = by["§5.2.2 fix: clear the flag"], by[RODE_IT_OUT]
    assert fix.drills == ["a-fixed", "c-noop"] and fix.not_recovered == ["c-noop"]
    assert fix.mttrs == [views[0].mttr_seconds] and fix.median == views[0].mttr_seconds
    assert rode.drills == ["b-ridden"] and rode.median == views[1].mttr_seconds


def test_alert_mttd_apart_from_the_probe_with_the_production_expectation(run: Path) -> None:
    inc = incidents(run)["a-fixed"]
    v = drill_view(inc)
    assert v.mttd_alert_seconds is not None and v.mttd_probe_seconds is not None
    assert v.mttd_alert_production_seconds == pytest.approx(v.mttd_alert_seconds + 59, abs=0.01)
    assert "scaled ×60" in v.alert_note and "1m in production" in v.alert_note
    page = build_report(run).read_text()
    cells = row_of(page, "a-fixed")
    assert cells[4] == "§5.2.2 fix: clear the flag"
    assert cells[6].startswith(f"{v.mttd_alert_seconds:.2f} s")
    assert f"production ≈ {v.mttd_alert_production_seconds:.2f} s" in cells[6]
    assert cells[7] == f"{v.mttd_probe_seconds:.2f} s"
    assert row_of(page, "FlagAlert")[3] == SCALED.note()


def test_the_report_shows_steps_rode_it_out_and_skipped_detectors(run: Path) -> None:
    page = build_report(run).read_text()
    assert "<h3>MTTR by recovery procedure</h3>" in page
    fix = row_of(page, "§5.2.2 fix: clear the flag")
    assert fix[1] == "a-fixed, c-noop" and fix[4] == "c-noop"
    assert row_of(page, RODE_IT_OUT)[1] == "b-ridden"
    step = row_of(page, "clear the flag")
    assert re.fullmatch(r"\d+\.\d\d s", step[1]) and step[2] == "succeeded"
    assert "rode it out — the stack itself (the flag is harmless by design)" in page
    assert "clear the flag; steady state restored by it." in page
    assert "steady state NOT restored by the procedure" in page, "the no-op drill"
    skipped = row_of(page, "FlagPage")[2]
    assert skipped == f"skipped: {NO_PROM}", "skipped with its reason, not 'never'"


def test_the_summary_shows_the_same(run: Path) -> None:
    found = list(incidents(run).values())
    lines = drill_lines(found)
    fixed = drill_view(incidents(run)["a-fixed"])
    [row] = [x for x in lines if x.startswith("| a-fixed |")]
    assert "| §5.2.2 fix: clear the flag |" in row
    assert f"{fixed.mttd_alert_seconds:.2f} (production ≈ " in row
    assert any(x.startswith("| rode it out (no procedure) | b-ridden |") for x in lines)
    assert any(x.startswith("| §5.2.2 fix: clear the flag | a-fixed, c-noop |")
               and x.endswith("| c-noop |") for x in lines)  # fmt: skip
    steps = next(x for x in lines if x.startswith("- **a-fixed**"))
    assert re.search(r"diagnose \d+\.\d\d s; clear the flag \d+\.\d\d s$", steps)
    assert any("steady state not restored by it" in x for x in lines if "c-noop" in x)
    assert f"  - skipped detector FlagPage: skipped: {NO_PROM}" in lines
    assert any("scaled ×60" in x for x in lines), "the production-scale note"
    data = drill_data(found)
    json.dumps(data)
    assert {d["drill"]: d["procedure"] for d in data["drills"]}["b-ridden"] == RODE_IT_OUT
    assert [p["procedure"] for p in data["mttr_by_procedure"]] == [
        "§5.2.2 fix: clear the flag", RODE_IT_OUT]  # fmt: skip


def test_the_incident_record_shows_procedure_split_mttd_and_skips(run: Path) -> None:
    md = {p.stem.rsplit("-", 2)[-2] + "-" + p.stem.rsplit("-", 1)[-1]: p.read_text()
          for p in run.rglob("incidents/*.md")}  # fmt: skip
    fixed, ridden, noop = md["a-fixed"], md["b-ridden"], md["c-noop"]
    assert "Procedure §5.2.2 fix: clear the flag (took " in fixed
    assert "steady state restored by it" in fixed and "steady state NOT restored" in noop
    assert re.search(r"\| clear the flag \| [\d.]+ \| \d+\.\d\d s \| succeeded \|", fixed)
    assert "rode it out" in ridden and "harmless by design" in ridden
    assert f"| FlagPage | alert | skipped: {NO_PROM} |" in fixed, "not 'never'"
    assert f"| detectors skipped on this target | FlagPage: skipped: {NO_PROM} |" in fixed
    assert re.search(r"rule windows at production scale \| \d+\.\d\d s \(rule windows scaled "
                     r"×60", fixed)  # fmt: skip
    assert "| MTTD by the harness's probes | " in fixed


def test_a_record_from_before_procedures_reads_as_unknown(tmp_path: Path) -> None:
    old = {"incident_id": "INC-1-old", "drill": "old", "runbook": "5.2.2", "passed": True,
           "mttd_seconds": 0.4, "mttr_seconds": 3.2, "failed_probes": 1, "total_probes": 4,
           "timeline": []}  # fmt: skip
    v = drill_view(Incident.from_dict(old))
    assert v.procedure == "" and not v.rode_it_out and v.mttd_alert_seconds is None
    [p] = mttr_by_procedure([v])
    assert p.procedure.startswith("unknown") and p.mttrs == [3.2]
    assert "procedure not recorded" in "\n".join(drill_lines([Incident.from_dict(old)]))
