"""The load gate's run: one load test per session, judged per SLO by the tests beside it."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsdrill.load import LoadProfile, LoadResult, run_load
from opsdrill.targets.base import Target

SLO_FILE = Path(__file__).resolve().parents[1] / "slo.yaml"
#: the release gate's load: ramp 3 s, then 20 requests/s for 20 s, a training run every 10 s
GATE_PROFILE = LoadProfile(rate=20, duration=20, ramp=3, run_interval=10, run_wait=90)


@pytest.fixture(scope="session")
def gate_result(target: Target, reports_dir: Path) -> LoadResult:
    """Run the gate's load once; Locust's CSV/HTML and slo.json go to <reports>/load/."""
    out = reports_dir / "load"
    result = run_load(
        target.endpoints.api_url, GATE_PROFILE, slo_file=SLO_FILE,
        api_key=target.endpoints.api_key, reports_dir=out,
    )  # fmt: skip
    result.write_json(out / "slo.json")
    print("\n" + result.summary())
    return result
