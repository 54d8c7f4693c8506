"""opsdrill.load: pacing and HDR arithmetic, then real runs against the embedded stack.

On the stack: a rate one user cannot reach is INCONCLUSIVE and fails; a stack slowed by a
real table lock fails the gate naming the latency SLO; a master with two workers on loopback
merges HDR histograms exactly (equal to one histogram fed every raw sample).
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from pathlib import Path

import pytest

from opsdrill.load import LoadProfile, Verdict, hdr, run_load, start_load
from opsdrill.load.schedule import UserSchedule

ROOT = Path(__file__).resolve().parents[1]
SLO_FILE = ROOT / "slo.yaml"


def test_schedule_holds_the_rate_and_ramps_linearly() -> None:
    s = UserSchedule(t0=100.0, ramp=4.0, duration=10.0, rate=5.0, phase=0.3)
    times = list(s.due_times())
    assert times == sorted(times) and times[0] >= 100.0 and times[-1] < 114.0
    assert s.steady_count() == 50  # 5/s for 10 s, whatever the phase
    assert sum(1 for t in times if t < 104.0) == 10  # the ramp holds half its rate × time


def test_hdr_merge_is_lossless_and_percentiles_are_exact_to_0_1_percent() -> None:
    import random

    rng = random.Random(7)
    samples = [rng.lognormvariate(-3, 1) for _ in range(5000)]
    parts = [hdr.new_histogram() for _ in range(3)]
    whole = hdr.new_histogram()
    for i, s in enumerate(samples):
        hdr.record(parts[i % 3], s)
        hdr.record(whole, s)
    merged = hdr.merge(hdr.decode(hdr.encode(p)) for p in parts)
    for p in (50, 95, 99, 99.9):
        assert merged.get_value_at_percentile(p) == whole.get_value_at_percentile(p)
    exact = sorted(samples)[int(0.95 * len(samples)) - 1] * 1e6
    assert merged.get_value_at_percentile(95) == pytest.approx(exact, rel=2e-3)
    assert hdr.count_above(merged, 0.5) == sum(1 for s in samples if s > 0.5)


def test_unreachable_rate_is_inconclusive_and_fails(stack, tmp_path: Path) -> None:
    ep = stack.endpoints
    profile = LoadProfile(rate=1000, duration=4, ramp=0.5, users=1)
    result = run_load(ep.api_url, profile, slo_file=SLO_FILE, api_key=ep.api_key,
                      reports_dir=tmp_path)  # fmt: skip
    assert result.verdict is Verdict.INCONCLUSIVE, result.summary()
    assert not result.passed
    assert result.achieved_rate < 0.95 * result.target_rate
    assert "INCONCLUSIVE, not a pass" in result.summary()


def hold_lock_on_models(dsn: str, until: float, hold: float = 1.2) -> int:
    """Hold ACCESS EXCLUSIVE on `models` (read by every forecast) in cycles, until `until`."""
    import psycopg

    cycles = 0
    with psycopg.connect(dsn, connect_timeout=5) as conn:
        while time.time() < until and cycles < 100:
            with conn.transaction():
                conn.execute("LOCK TABLE models IN ACCESS EXCLUSIVE MODE")
                time.sleep(hold)
            time.sleep(0.05)
            cycles += 1
    return cycles


def test_slowed_stack_fails_naming_the_latency_slo(stack, tmp_path: Path) -> None:
    ep = stack.endpoints
    profile = LoadProfile(rate=10, duration=8, ramp=1, users=40)
    handle = start_load(ep.api_url, profile, slo_file=SLO_FILE, api_key=ep.api_key,
                        reports_dir=tmp_path)  # fmt: skip
    until = handle.cfg.end
    locker = threading.Thread(target=hold_lock_on_models, args=(ep.dsn, until), daemon=True)
    time.sleep(max(0.0, handle.cfg.t0 - time.time()))
    locker.start()
    result = handle.wait()
    locker.join(timeout=10)
    assert result.load_reached, result.summary()
    assert result.verdict is Verdict.FAIL, result.summary()
    assert "prediction-latency" in result.failed_slos()
    latency = next(v for v in result.verdicts if v.slo == "prediction-latency")
    assert "error budget" in latency.budget


def test_master_and_two_workers_merge_percentiles_exactly(stack, tmp_path: Path) -> None:
    ep = stack.endpoints
    raw_dir = tmp_path / "raw"
    raw_dir.mkdir()
    profile = LoadProfile(rate=20, duration=5, ramp=1)
    result = run_load(ep.api_url, profile, slo_file=SLO_FILE, api_key=ep.api_key,
                      reports_dir=tmp_path, workers=2, raw_dir=raw_dir)  # fmt: skip
    assert result.workers == 2 and result.complete, result.summary()
    files = list(raw_dir.glob("raw-*.txt"))
    assert len(files) == 2, "each worker writes its own raw samples"
    raw: dict[str, list[int]] = defaultdict(list)
    for f in files:
        for line in f.read_text().splitlines():
            kind, us = line.split()
            raw[kind].append(int(us))
    assert set(raw) == set(result.histograms)
    for kind, values in raw.items():
        one = hdr.new_histogram()
        for v in values:
            one.record_value(v)
        merged = result.histograms[kind]
        assert merged.get_total_count() == len(values)
        for p in (50, 90, 95, 99, 100):
            assert merged.get_value_at_percentile(p) == one.get_value_at_percentile(p), kind
    assert result.passed, result.summary()
