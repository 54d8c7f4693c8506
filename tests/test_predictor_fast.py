"""The fast path (fastnet: the network as a plain torch module) forecasts exactly what
`NeuralForecast.predict` forecasts, for every model type the stack trains, on real models
trained by the stack's own trainer on its shipped data: same values (1e-5 relative), same
dates, for a long series, a series shorter than the model's input window, and another
series than the one the model was trained on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.trained_models import CASES, offered_models, points, train_small


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
