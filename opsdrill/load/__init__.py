"""Load tests judged against slo.yaml: an embeddable API around Locust, run in subprocesses.

    from opsdrill.load import LoadProfile, run_load
    result = run_load(api_url, LoadProfile(rate=20, duration=30, ramp=5), api_key=key)
    assert result.passed, result.summary()

Requests follow a target arrival rate (open model) and are timed from when they were due, into
HDR histograms merged exactly across workers; a run that did not reach its target load is
INCONCLUSIVE and fails. Never imports locust into the caller's process.
"""

from __future__ import annotations

from opsdrill.load.result import (
    EndpointStats,
    LoadResult,
    SloVerdict,
    Verdict,
    gate_json,
    judge,
)
from opsdrill.load.runner import LoadHandle, LoadProfile, run_load, start_load

__all__ = [
    "EndpointStats",
    "LoadHandle",
    "LoadProfile",
    "LoadResult",
    "SloVerdict",
    "Verdict",
    "gate_json",
    "judge",
    "run_load",
    "start_load",
]
