"""opsdrill.load: pacing and HDR arithmetic, then real runs against the embedded stack.

On the stack: a rate one user cannot keep is INCONCLUSIVE (the generator fell behind), never a
server verdict; a stack slowed by a real table lock fails the gate naming the latency SLO; a
wrong API key makes training-completion an ERROR; runs still unfinished when the wait ends
count as bad; the cache-cold mix asks valid forecasts of every series; a master with two
workers on loopback merges HDR histograms exactly (equal to one histogram fed every raw sample).
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from opsdrill.load import LoadProfile, LoadResult, Verdict, hdr, run_load, start_load
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


def test_too_high_rate_is_inconclusive_never_a_server_verdict(stack, tmp_path: Path) -> None:
    ep = stack.endpoints
    # one user sends one request at a time: a few hundred a second at best, never 2000
    profile = LoadProfile(rate=2000, duration=3, ramp=0, users=1)
    result = run_load(ep.api_url, profile, slo_file=SLO_FILE, api_key=ep.api_key,
                      reports_dir=tmp_path)  # fmt: skip
    assert result.verdict is Verdict.INCONCLUSIVE, result.summary()
    assert not result.passed
    assert result.target_count == 6000, "judged against the configured rate × duration"
    assert result.achieved_rate < 0.95 * result.target_rate
    assert result.late_count > 0.5 * result.sent_count, result.summary()
    assert "the load generator could not keep the schedule" in result.summary()
    assert "INCONCLUSIVE, not a pass" in result.summary()
    judged = {v.slo: v.verdict for v in result.verdicts}
    assert set(judged.values()) <= {Verdict.INCONCLUSIVE, Verdict.SKIPPED}, judged
    latency = next(v for v in result.verdicts if v.slo == "prediction-latency")
    assert latency.lower > latency.error_budget, "timed from due, the late ones look slow..."
    assert "could not keep the schedule" in latency.note, "...but that is not the server's"
    assert judged["training-completion"] is Verdict.SKIPPED  # this profile submits no runs


def test_achieved_load_is_compared_with_the_configured_rate_not_the_users_plan(
    tmp_path: Path,
) -> None:
    """Users that planned only half the configured load (say, half of them never spawned)
    sent all they planned: the run is still INCONCLUSIVE."""
    from opsdrill.load.config import LoadConfig
    from opsdrill.load.runner import LoadHandle
    from opsdrill.slo.parser import load_slo_file

    profile = LoadProfile(rate=20, duration=10)
    cfg = LoadConfig(t0=0, ramp=1, duration=10, rate_per_user=1, users=20, mix={"health": 1.0})
    counts = {
        "health": {
            "sent": 100,
            "achieved": 100,
            "ok": 100,
            "transport": 0,
            "http5xx": 0,
            "http503": 0,
            "http4xx": 0,
            "http401": 0,
            "late": 0,
        }
    }
    hist = hdr.new_histogram()
    for _ in range(100):
        hdr.record(hist, 0.01)
    raw = {"hdr": {"health": hdr.encode(hist)}, "counts": counts, "target": 100, "runs": [],
           "workers": {}, "complete": True}  # fmt: skip
    handle = LoadHandle([], cfg, tmp_path, "http://127.0.0.1:9", profile,
                        load_slo_file(SLO_FILE), 0, 0.0)  # fmt: skip
    result = handle._result(raw)
    assert (result.scheduled_count, result.target_count) == (100, 200)
    assert not result.load_reached and result.verdict is Verdict.INCONCLUSIVE
    assert "100 of 200 due requests sent" in result.summary()


def test_wrong_api_key_makes_training_completion_an_error(stack, tmp_path: Path) -> None:
    ep = stack.endpoints
    profile = LoadProfile(rate=5, duration=4, ramp=1, run_interval=1, run_wait=5)
    result = run_load(ep.api_url, profile, slo_file=SLO_FILE, api_key="not-the-key",
                      reports_dir=tmp_path)  # fmt: skip
    completion = next(v for v in result.verdicts if v.slo == "training-completion")
    assert completion.verdict is Verdict.ERROR, completion.line()
    assert "401" in completion.note and "X-API-Key" in completion.note
    assert result.counts["runs:submit"]["http401"] == result.counts["runs:submit"]["sent"] > 0
    assert result.verdict in (Verdict.ERROR, Verdict.INCONCLUSIVE), result.summary()
    assert not result.passed and "training-completion" in result.failed_slos()


def test_missing_api_key_is_an_error_too() -> None:
    from opsdrill.load import LoadResult, judge
    from opsdrill.slo.parser import load_slo_file

    submit = {"sent": 3, "achieved": 3, "ok": 0, "transport": 0, "http5xx": 0, "http503": 0,
              "http4xx": 3, "http401": 3, "late": 0}  # fmt: skip
    result = LoadResult(target_rate=1, achieved_rate=1, target_count=10, achieved_count=10,
                        duration=10, min_rate_ratio=0.95, complete=True, workers=1,
                        endpoints={}, counts={"runs:submit": submit}, mix={"health": 1.0},
                        run_interval=3, api_key_given=False)  # fmt: skip
    result.verdicts = judge(result, load_slo_file(SLO_FILE))
    completion = next(v for v in result.verdicts if v.slo == "training-completion")
    assert completion.verdict is Verdict.ERROR and "no API key was given" in completion.note


def test_runs_unfinished_when_the_wait_ends_count_as_bad(stack, tmp_path: Path) -> None:
    from opsdrill.load.runner import wait_for_runs

    ep = stack.endpoints
    profile = LoadProfile(rate=10, duration=4, ramp=1, run_interval=1, run_wait=0)
    result = run_load(ep.api_url, profile, slo_file=SLO_FILE, api_key=ep.api_key,
                      reports_dir=tmp_path)  # fmt: skip
    try:
        completion = next(v for v in result.verdicts if v.slo == "training-completion")
        assert result.runs["unfinished"] >= 2, result.runs  # a run takes seconds to train
        assert completion.bad == result.runs["unfinished"] + result.runs["failed"]
        assert completion.total == sum(result.runs[k] for k in ("completed", "failed",
                                                                "unfinished"))  # fmt: skip
        assert completion.verdict is Verdict.BREACHED, completion.line()
    finally:  # leave no training behind to slow the next test
        ids = [r["run_id"] for r in httpx.get(f"{ep.api_url}/runs", timeout=10).json()
               if r["status"] in ("scheduled", "running")]  # fmt: skip
        wait_for_runs(ep.api_url, ids, 180)


def test_cache_cold_mix_asks_valid_forecasts_with_the_bypass_header(stack, tmp_path: Path) -> None:
    """Every cold request is a forecast the app answers (any series with a model, a horizon
    its model allows). Whether it ran the model is the app's side of the contract (the
    X-Forecast-Cache: bypass header; an app without it ignores the header)."""
    from opsdrill.slo.parser import load_slo_file

    ep = stack.endpoints
    cold = load_slo_file(SLO_FILE).gate.profile("cache-cold")
    profile = LoadProfile(rate=8, duration=4, ramp=1, mix=cold.mix, name="cache-cold")
    result = run_load(ep.api_url, profile, slo_file=SLO_FILE, api_key=ep.api_key,
                      reports_dir=tmp_path)  # fmt: skip
    assert set(result.counts) == {"forecast:cold", "predict:cold"}, result.counts
    for kind, c in result.counts.items():  # answered or not (a busy box), never refused
        assert c["http4xx"] == 0 and c["ok"] > 0, (kind, c)
    assert result.profile == "cache-cold" and result.to_json()["profile"] == "cache-cold"


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
    assert not result.load_problem(), result.summary()


#: the same app code on the same database and model files, with 600 ms added to 10 % of model
#: runs (a seeded draw) and no result cache (what X-Forecast-Cache: bypass asks of the app);
#: it writes how many runs it slowed to $SLOWED when it stops
#: the real app without its executor (the stack's own app runs the training runs); the model
#: is slowed, when asked, by the app's own measurement switch NF_SLOW_FORWARD
GATE_APP = """
import signal, sys, uvicorn
from nf_auto_runner import config
from nf_auto_runner.app.application import create_app
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
uvicorn.run(create_app(config.load(), run_executor=False), host="127.0.0.1",
            port=int(sys.argv[1]), log_level="warning")
"""


def _cache_cold_gate(stack, tmp_path: Path, name: str, **env: str) -> LoadResult:
    """The cache-cold profile, shortened, against a second app on the stack's database."""
    import subprocess
    import sys

    from opsdrill import ports
    from opsdrill.probes.http import http_ok
    from opsdrill.slo.parser import load_slo_file

    port = ports.free_port()
    url = f"http://127.0.0.1:{port}"
    with open(tmp_path / f"{name}.log", "wb") as log:
        app = subprocess.Popen([sys.executable, "-c", GATE_APP, str(port)],
                               env=dict(stack.app_env(), **env),
                               stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not http_ok(f"{url}/health"):
            assert app.poll() is None and time.monotonic() < deadline, f"{name} app never ready"
            time.sleep(0.2)
        cold = load_slo_file(SLO_FILE).gate.profile("cache-cold")
        profile = replace(LoadProfile.from_gate(cold), rate=6, duration=40, ramp=2)
        return run_load(url, profile, slo_file=SLO_FILE, api_key=stack.endpoints.api_key,
                        reports_dir=tmp_path / name)  # fmt: skip
    finally:
        app.terminate()
        app.wait(timeout=30)


def test_slowed_model_fails_the_cache_cold_verdict_naming_latency(stack, tmp_path: Path) -> None:
    """Issue 12: 600 ms on 10 % of model runs must fail the cache-cold profile on
    prediction-latency, while the same app unslowed meets it: the slowdown decides."""
    control = _cache_cold_gate(stack, tmp_path, "control")
    slowed = _cache_cold_gate(stack, tmp_path, "slowed", NF_SLOW_FORWARD="0.6:0.1")
    for result in (control, slowed):
        assert not result.load_problem(), result.summary()
    fast = next(v for v in control.verdicts if v.slo == "prediction-latency")
    latency = next(v for v in slowed.verdicts if v.slo == "prediction-latency")
    print(f"control: {fast.line()}\nslowed: {latency.line()}")
    assert fast.verdict is Verdict.MET, fast.line()
    assert latency.verdict is Verdict.BREACHED, latency.line()
    assert "prediction-latency" in slowed.failed_slos() and slowed.verdict is Verdict.FAIL
