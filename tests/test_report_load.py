"""The report shows what a load running through a drill burned, and its percentiles over time."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

from opsdrill.report import RunArtefacts, build_report
from opsdrill.report.plots import load_percentile_plot

INCIDENT_ID = "INC-20260101T000000Z-db-sigkill-under-load"
INCIDENT = {
    "incident_id": INCIDENT_ID,
    "drill": "db-sigkill-under-load",
    "title": "PostgreSQL killed under load",
    "runbook": "5.2.2",
    "severity": "P0",
    "fault": "db_down(sig=SIGKILL)",
    "passed": True,
    "mttd_seconds": 0.4,
    "mttr_seconds": 2.5,
    "failed_probes": 4,
    "total_probes": 40,
    "errors": [],
    "timeline": [
        {"name": "injecting", "t": 1.0, "wall": "x", "detail": "db_down"},
        {"name": "detected", "t": 1.4, "wall": "x", "detail": "/health answers 503"},
        {"name": "reverted", "t": 3.0, "wall": "x", "detail": ""},
        {"name": "recovered", "t": 3.5, "wall": "x", "detail": ""},
    ],
    "samples": [],  # no availability plot: the only PNG on the page is the load's
}
LOAD = {
    "incident_id": INCIDENT_ID,
    "drill": "db-sigkill-under-load",
    "load": {"verdict": "PASS", "target_rate": 10.0, "achieved_rate": 9.9, "duration_s": 24},
    "fault_window": [1.0, 3.0],
    "budget": [
        {
            "slo": "api-success",
            "verdict": "FAIL",
            "measured": "97.5 % good (6 bad of 240)",
            "bad": 6,
            "total": 240,
            "error_ratio": 0.025,
            "burn_rate": 25.0,
            "budget_consumed": 0.000231,
        },
        {
            "slo": "prediction-latency",
            "verdict": "PASS",
            "measured": "p95 40.1 ms",
            "bad": 0,
            "total": 170,
            "error_ratio": 0.0,
            "burn_rate": 0.0,
            "budget_consumed": 0.0,
        },
    ],
    "history": [[t - 2.0, 10, 3 if 1 <= t - 2 <= 3 else 0, 9, 20 + t, 30 + t] for t in range(12)],
    "history_note": "Locust's per-second history",
}


def make_run(root: Path) -> Path:
    chaos = root / "gameday-x" / "chaos"
    (chaos / "incidents").mkdir(parents=True)
    (chaos / "incidents" / f"{INCIDENT_ID}.json").write_text(json.dumps(INCIDENT))
    (chaos / f"load-during-{INCIDENT_ID}.json").write_text(json.dumps(LOAD))
    return root / "gameday-x"


def test_collect_attaches_the_load_to_its_incident(tmp_path: Path) -> None:
    run = RunArtefacts.load(make_run(tmp_path))
    assert list(run.load_during) == [INCIDENT_ID]
    assert [i.incident_id for i in run.incidents] == [INCIDENT_ID], "not read as an incident"


def test_report_shows_budget_burned_under_load_and_the_percentile_plot(tmp_path: Path) -> None:
    page = build_report(make_run(tmp_path)).read_text()
    assert "Error budget burned under load" in page
    assert "9.9 of 10.0 requests/s" in page
    assert "api-success" in page and "6/240" in page and "25×" in page and "0.0231 %" in page
    [uri] = re.findall(r"load percentiles during db-sigkill-under-load' src='data:image/png;"
                       r"base64,([A-Za-z0-9+/=]+)", page)  # fmt: skip
    assert base64.b64decode(uri).startswith(b"\x89PNG")


def test_drill_without_load_has_no_budget_section(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    (run / "chaos" / f"load-during-{INCIDENT_ID}.json").unlink()
    page = build_report(run).read_text()
    assert "db-sigkill-under-load" in page and "burned under load" not in page


def test_percentile_plot_needs_a_history() -> None:
    assert load_percentile_plot({**LOAD, "history": []}) is None
    png = load_percentile_plot(LOAD)  # fault window from the file when no incident is given
    assert png is not None and png.startswith(b"\x89PNG")


def gate_result(profile: str, bad: int):  # type: ignore[no-untyped-def]
    """A judged gate run of 3000 /health requests with `bad` 5xx answers."""
    from opsdrill.load import LoadResult, judge
    from opsdrill.slo.parser import load_slo_file

    c = {"sent": 3000, "achieved": 3000, "ok": 3000 - bad, "transport": 0, "http5xx": bad,
         "http503": 0, "http4xx": 0, "http401": 0, "late": 0}  # fmt: skip
    r = LoadResult(target_rate=30, achieved_rate=30, target_count=3000, achieved_count=3000,
                   duration=100, min_rate_ratio=0.95, complete=True, workers=1, endpoints={},
                   counts={"health": c}, mix={"health": 1.0}, profile=profile)  # fmt: skip
    r.verdicts = judge(r, load_slo_file(Path(__file__).resolve().parents[1] / "slo.yaml"))
    return r


def test_gate_json_keeps_the_old_shape_and_adds_every_profile(tmp_path: Path) -> None:
    from opsdrill.load import gate_json

    data = gate_json({"mix": gate_result("mix", 0), "cache-cold": gate_result("cache-cold", 9)})
    mix, cold = data["profiles"]["mix"], data["profiles"]["cache-cold"]
    assert {k: data[k] for k in mix} == mix, "the top level is the first profile, unchanged"
    assert data["verdict"] == "PASS" and cold["verdict"] == "FAIL"
    assert data["gate_verdict"] == "FAIL", "the gate is as bad as its worst profile"
    api = {
        row["profile"]: row for row in data["slos"] + cold["slos"] if row["slo"] == "api-success"
    }
    assert api["mix"]["verdict"] == "MET" and api["cache-cold"]["verdict"] == "BREACHED"
    assert api["mix"]["upper"] <= api["mix"]["error_budget"] < api["cache-cold"]["lower"]
    # today's report reads the top level: it still shows the gate's table
    run = tmp_path / "gameday-x"
    (run / "load" / "load").mkdir(parents=True)
    (run / "load" / "load" / "slo.json").write_text(json.dumps(data))
    page = build_report(run).read_text()
    assert "api-success" in page and "MET" in page and "100.000 % good (0 bad of 3000)" in page
