"""Runbook §5.2.2 under load: SIGKILL the postmaster while paced traffic runs, and say what
the outage cost in error budget.

The drill is the one in test_db_down.py; `start_load` drives a modest open-model rate around
it. The load's verdicts and budget burn are written beside the incident record as
`load-during-<incident id>.json` (the report shows them with the drill), together with
Locust's per-second history (`--csv-full-history`: request and failure counts per second,
rolling percentiles measured from send time) on the drill's clock, for the percentile plot.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from opsdrill.drill import DrillResult
from opsdrill.drill.standard import StandardDrill
from opsdrill.load import LoadHandle, LoadProfile, LoadResult, start_load
from opsdrill.slo.model import SloFile
from opsdrill.slo.parser import load_slo_file
from opsdrill.targets.base import Target

from .test_db_down import db_sigkill_spec

pytestmark = [
    pytest.mark.destructive,
    pytest.mark.load,
    pytest.mark.runbook("5.2.2"),
    pytest.mark.fault("db_down", sig="SIGKILL"),
]

SLO_FILE = Path(__file__).resolve().parents[1] / "slo.yaml"
#: modest: 10 requests/s of the gate's mix, no training runs, long enough to hold the drill
LOAD = LoadProfile(rate=10, duration=24, ramp=2, timeout=2.0)


def wait_for_steady(handle: LoadHandle, limit: float = 15.0) -> None:
    """Return once the load's steady phase has begun (bounded by `limit` seconds)."""
    deadline = time.monotonic() + limit
    while time.time() < handle.cfg.t0 + handle.cfg.ramp + 0.5 and time.monotonic() < deadline:
        time.sleep(0.1)


def locust_history(path: Path, origin: float) -> list[list[float]]:
    """[t, requests/s, failures/s, p50, p95, p99] per second of the Aggregated row, t on the
    drill's clock (`origin` = its wall-clock start); counts are exact (differenced totals),
    percentiles are Locust's rolling ones, in ms."""
    if not path.exists():
        return []
    rows, last = [], None
    with path.open() as fh:
        for row in csv.DictReader(fh):
            if row["Name"] != "Aggregated" or row["50%"] == "N/A":
                continue
            now = (int(row["Timestamp"]), int(row["Total Request Count"]),
                   int(row["Total Failure Count"]))  # fmt: skip
            if last is not None and now[0] > last[0]:
                dt = now[0] - last[0]
                rows.append([round(now[0] - origin, 3), (now[1] - last[1]) / dt,
                             (now[2] - last[2]) / dt,
                             *(float(row[p]) for p in ("50%", "95%", "99%"))])  # fmt: skip
            last = now
    return rows


def load_during(
    drill: DrillResult, load: LoadResult, slos: SloFile, work: Path, steady_wall: float
) -> dict[str, Any]:
    """The incident's attachment: the load, its verdicts, the budget it burned, its history."""
    tl = drill.timeline
    start, end = tl.first("injecting"), tl.first("reverted")
    budget = []
    for v in load.verdicts:
        burn = slos.get(v.slo).burn(v.bad, v.total, load.duration)
        budget.append({"slo": v.slo, "verdict": v.verdict.value, "measured": v.measured,
                       "objective": v.objective, "bad": v.bad, "total": v.total,
                       "error_ratio": burn.error_ratio, "burn_rate": burn.burn_rate,
                       "budget_consumed": burn.budget_consumed, "explain": v.budget})  # fmt: skip
    return {
        "incident_id": drill.incident_id,
        "drill": drill.spec.name,
        "load": {
            "verdict": load.verdict.value,
            "target_rate": round(load.target_rate, 3),
            "achieved_rate": round(load.achieved_rate, 3),
            "duration_s": load.duration,
            "load_reached": load.load_reached,
            "steady_from_s": round(steady_wall - tl.started_wall, 3),
        },
        "fault_window": [start.t if start else None, end.t if end else None],
        "budget": budget,
        "endpoints": {
            k: e.percentiles_ms | {"count": e.count, "errors": e.errors}
            for k, e in load.endpoints.items()
        },
        "history": locust_history(work / "locust_stats_history.csv", tl.started_wall),
        "history_note": "Locust's per-second history: exact counts, rolling 10 s percentiles "
        "from send time (the budget above is from due-time HDR histograms)",
    }


def test_db_sigkill_under_load_reports_budget_burned(
    target: Target,
    drill: StandardDrill,
    incident_dir: Path,
    record_property: Callable[[str, object], None],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    slos = load_slo_file(SLO_FILE)
    spec = dataclasses.replace(
        db_sigkill_spec(drill),  # §5.2.2's DB SIGKILL drill, as test_db_down.py runs it
        name="db-sigkill-under-load",
        title="PostgreSQL killed (SIGKILL of the postmaster) under 10 requests/s",
        recovery_timeout=20,
    )
    monkeypatch.setenv("LOCUST_CSV_FULL_HISTORY", "true")  # Locust reads its options from env
    work = tmp_path / "load"
    handle = start_load(target.endpoints.api_url, LOAD, slo_file=slos,
                        api_key=target.endpoints.api_key, reports_dir=work)  # fmt: skip
    try:
        wait_for_steady(handle)
        result = drill.run(spec, check=False)
    finally:
        load = handle.wait()
    data = load_during(result, load, slos, work, handle.cfg.t0 + handle.cfg.ramp)
    path = incident_dir / f"load-during-{result.incident_id}.json"
    path.write_text(json.dumps(data, indent=2) + "\n")
    kept = incident_dir / f"load-during-{result.incident_id}"
    shutil.copytree(work, kept, ignore=shutil.ignore_patterns("result.json"))
    record_property("load_during", str(path))
    for row in data["budget"]:
        record_property(f"budget_burned_{row['slo']}", row["budget_consumed"])
    print("\n" + load.summary() + "\n" + "\n".join(v.budget for v in load.verdicts))
    drill.verify(result)
    steady, end = data["load"]["steady_from_s"], data["fault_window"][1] or 0
    assert steady <= 0 < end <= steady + LOAD.duration, (
        f"the load's steady phase ({steady:.1f} s + {LOAD.duration:g} s on the drill's clock) "
        f"did not cover the fault window {data['fault_window']}"
    )
    assert load.achieved_rate >= 0.9 * LOAD.rate, load.summary()
