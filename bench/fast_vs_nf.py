"""The fast path's forecast against `NeuralForecast.predict`, same model, one series.

    .venv/bin/python bench/fast_vs_nf.py [--repeat 200]

Trains a small MLP and NHITS with the stack's own trainer on its shipped series (as a run
would), then times, interleaved, per model: `NeuralForecast.predict(df=...)` on the loaded
model; the fast path's forward pass (`fastnet.FastModel.predict`: scale, network, unscale on
one window); and the whole fast forecast the API runs (`_Served.predict`: window from the
points, batcher, dates). Medians in ms and the ratios.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "system")]


def bench_one(name: str, series_id: str, h: int, root: Path, repeat: int) -> dict[str, float]:
    """Median ms of NeuralForecast.predict, the fast forward pass and the fast API path."""
    import pandas as pd
    import torch
    from neuralforecast import NeuralForecast
    from nf_auto_runner import fastnet
    from nf_auto_runner.predictor import ModelRef, Predictor, _Served, set_torch_threads

    from system.tests.trained_models import points, train_small

    path = train_small(root / name, name)
    freq, pts = points(series_id)
    df = pd.DataFrame(
        {
            "unique_id": "series",
            "ds": pd.to_datetime([p["ds"] for p in pts]),
            "y": [float(p["y"]) for p in pts],
        }
    )
    nf = NeuralForecast.load(path=str(path))
    served = _Served(ModelRef(1, name, series_id, h, str(path)), Predictor())
    fm = served.fast
    w, m = fastnet.window([float(p["y"]) for p in pts], fm.input_size)
    wt, mt = torch.tensor([w]), torch.tensor([m])
    calls = {
        "nf": lambda: nf.predict(df=df),
        "forward": lambda: fm.predict(wt, mt),
        "api": lambda: served.predict(freq, pts),
    }
    timings: dict[str, list[float]] = {k: [] for k in calls}
    for fn in calls.values():  # warm every path once
        fn()
    for _ in range(repeat):  # interleaved: load from other work hits all three alike
        for key, fn in calls.items():
            # Lightning's predict sets torch's intra-op threads to the core count each call;
            # the app never imports it, so the fast path gets the app's setting back here
            threads = torch.get_num_threads()
            if key != "nf":
                set_torch_threads()
            t0 = time.perf_counter()
            fn()
            timings[key].append((time.perf_counter() - t0) * 1000)
            torch.set_num_threads(threads)
    return {k: statistics.median(v) for k, v in timings.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args()

    from nf_auto_runner.predictor import set_torch_threads

    from system.tests.trained_models import CASES

    threads = set_torch_threads()
    root = Path(tempfile.mkdtemp(prefix="bench-fast-vs-nf-"))
    print(f"torch intra-op threads: {threads}")
    print("| model | NeuralForecast.predict ms | fast forward pass ms | × | fast forecast "
          "(API path) ms | × |\n|---|---:|---:|---:|---:|---:|")  # fmt: skip
    for name, (series_id, h) in CASES.items():
        med = bench_one(name, series_id, h, root, args.repeat)
        print(
            f"| {name} | {med['nf']:.2f} | {med['forward']:.3f} | {med['nf'] / med['forward']:.0f} "
            f"| {med['api']:.3f} | {med['nf'] / med['api']:.0f} |"
        )


if __name__ == "__main__":
    main()
