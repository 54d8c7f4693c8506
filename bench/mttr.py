"""MTTR after a PostgreSQL SIGKILL and after an API SIGKILL, on a running embedded stack.

    .venv/bin/python bench/mttr.py --state-dir /var/tmp/chaos1/state [--repeat 5]

Each repetition is a real drill (opsdrill.drill.run_drill) with recovery as soon as the
outage is detected — no alert wait, no hold — so the figure is the stack's own recovery time:
  db-sigkill   PostgreSQL started by runbook §5.2.2 fix 1; the app reconnects by itself
  app-sigkill  the app restarted by runbook §5.3.1 (pid file, start, /health polled 0.5 s apart)
MTTR = injection -> /health 200 and a forecast succeeds again (timeline step 50 ms).
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import httpx

from opsdrill.drill import Detector, DrillSpec, run_drill
from opsdrill.faults import AppCrash, DbDown
from opsdrill.probes.sql import sql_ok
from opsdrill.recovery.database import start_postgres
from opsdrill.recovery.services import restart_app
from opsdrill.targets.local import LocalTarget


def _status(url: str) -> int:
    try:
        return httpx.get(url, timeout=1.0).status_code
    except httpx.HTTPError:
        return 0


def _forecast_ok(api: str) -> bool:
    body = {"series_id": "airpassengers", "horizon": 12}
    try:
        return httpx.post(f"{api}/predict", json=body, timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def spec_for(scenario: str, target: LocalTarget) -> DrillSpec:
    api = target.endpoints.api_url
    steady = [
        Detector("/health 200", lambda: _status(f"{api}/health") == 200, 60),
        Detector("forecast ok", lambda: _forecast_ok(api), 60),
    ]
    if scenario == "db-sigkill":
        fault, recover = DbDown(target, sig="SIGKILL"), start_postgres(target)
        effect = Detector("db refuses", lambda: not sql_ok(target.endpoints.dsn), 10)
        detect = Detector("/health 503", lambda: _status(f"{api}/health") == 503, 10)
    else:
        fault = AppCrash(target, sig="SIGKILL")
        effect = Detector("api silent", lambda: _status(f"{api}/health") == 0, 10)
        detect = effect
        recover = restart_app(target)

    return DrillSpec(scenario, scenario, "5.2.2" if scenario == "db-sigkill" else "5.3.1", "P0",
                     fault, effect, [detect], steady, f"{api}/health",
                     recover=recover)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    target = LocalTarget(args.state_dir)
    target.wait_healthy(60)
    print("| scenario | runs | MTTD median | MTTR median | MTTR min | MTTR max | failed probes |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for scenario in ("db-sigkill", "app-sigkill"):
        mttd, mttr, failed = [], [], []
        for _ in range(args.repeat):
            result = run_drill(spec_for(scenario, target))
            if not result.passed or result.mttr is None:
                raise SystemExit(f"{scenario}: drill failed: {result.errors}")
            mttd.append(result.mttd or 0.0)
            mttr.append(result.mttr)
            failed.append(result.failed_probes)
        print(f"| {scenario} | {args.repeat} | {statistics.median(mttd):.2f} s | "
              f"{statistics.median(mttr):.2f} s | {min(mttr):.2f} s | {max(mttr):.2f} s | "
              f"{statistics.median(failed):.0f} |")  # fmt: skip


if __name__ == "__main__":
    main()
