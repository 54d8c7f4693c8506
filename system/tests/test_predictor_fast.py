"""The fast path (fastnet: the network as a plain torch module) forecasts exactly what
`NeuralForecast.predict` forecasts, for every model type the stack trains, on real models
trained by the stack's own trainer on its shipped data: same values (1e-5 relative), same
dates, for a long series, a series shorter than the model's input window, and another
series than the one the model was trained on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from system.tests.trained_models import CASES, offered_models, points, train_small


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    return {name: train_small(root / name, name) for name in offered_models()}


def _reference(path: Path, freq: str, pts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    import pandas as pd
    from neuralforecast import NeuralForecast

    nf = NeuralForecast.load(path=str(path))
    df = pd.DataFrame(
        {
            "unique_id": "series",
            "ds": pd.to_datetime([p["ds"] for p in pts]),
            "y": [float(p["y"]) for p in pts],
        }
    )
    pred = nf.predict(df=df)
    col = next(c for c in pred.columns if c not in ("unique_id", "ds"))
    return [
        {"ds": ts.isoformat(), "value": float(v)}
        for ts, v in zip(pred["ds"], pred[col], strict=True)
    ]


def test_every_offered_model_type_is_covered() -> None:
    assert set(offered_models()) <= set(CASES), "a model type the API offers has no case here"


@pytest.mark.parametrize("model_name", offered_models())
@pytest.mark.parametrize(
    "data",
    ["full", "shorter than the input window", "another series"],
)
def test_fast_path_equals_neuralforecast_predict(
    trained: dict[str, Path], model_name: str, data: str
) -> None:
    from nf_auto_runner import fastnet
    from nf_auto_runner.predictor import ModelRef, Predictor, _Served

    series_id, h = CASES[model_name]
    if data == "another series":
        series_id = "synthetic_3" if series_id == "airpassengers" else "airpassengers"
    freq, pts = points(series_id)
    if data == "shorter than the input window":
        pts = pts[: fastnet.load(trained[model_name]).input_size - 3]
    ref = ModelRef(1, model_name, series_id, h, str(trained[model_name]))
    served = _Served(ref, Predictor())
    assert served.fast is not None, "the stack's own model fell back to NeuralForecast"
    fast = served.predict(freq, pts)
    expected = _reference(trained[model_name], freq, pts)
    assert [p["ds"] for p in fast] == [p["ds"] for p in expected]
    assert len(fast) == h
    for got, want in zip(fast, expected, strict=True):
        assert got["value"] == pytest.approx(want["value"], rel=1e-5), (got, want)


def test_a_changed_weight_is_noticed(trained: dict[str, Path]) -> None:
    """The comparison can fail: one perturbed weight moves the forecast off the reference."""
    import torch
    from nf_auto_runner.predictor import ModelRef, Predictor, _Served

    series_id, h = CASES["MLP"]
    freq, pts = points(series_id)
    served = _Served(ModelRef(1, "MLP", series_id, h, str(trained["MLP"])), Predictor())
    with torch.no_grad():
        served.fast.net.out.bias[0] += 0.01
    got = served.predict(freq, pts)[0]["value"]
    want = _reference(trained["MLP"], freq, pts)[0]["value"]
    assert got != pytest.approx(want, rel=1e-5)


def test_serving_imports_neither_neuralforecast_nor_lightning(trained: dict[str, Path]) -> None:
    """Cold start: the app and a forecast on each model type need torch and safetensors
    only; NeuralForecast's package (which pulls in Lightning and every model) and pandas
    stay out of the serving process."""
    import json
    import os
    import subprocess
    import sys

    code = f"""
import json, sys
from nf_auto_runner.app import application, main  # the whole app, as the server imports it
from nf_auto_runner.predictor import ModelRef, Predictor, _Served
from system.tests.trained_models import CASES, points
Predictor().warm_up(None)  # what start-up imports before /health says 200
for name, path in {json.dumps({k: str(v) for k, v in trained.items()})}.items():
    sid, h = CASES[name]
    freq, pts = points(sid)
    assert len(_Served(ModelRef(1, name, sid, h, path), Predictor()).predict(freq, pts)) == h
heavy = ("neuralforecast", "pytorch_lightning", "lightning", "lightning_fabric", "pandas")
print(json.dumps(sorted({{m.split(".")[0] for m in sys.modules}} & set(heavy))))
"""
    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(root), str(root / "system")]))
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
