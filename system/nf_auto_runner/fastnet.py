"""Saved NeuralForecast models run as plain torch modules: no Lightning, no DataFrames.

`NeuralForecast.predict` builds a dataset, a DataFrame and a Lightning trainer for every call,
and importing NeuralForecast pulls in Lightning (seconds). For the models this stack trains
(MLP, NHITS: univariate, no exogenous features, a point loss) the prediction is only:
take the last `input_size` observations as one window, scale it with the model's temporal
scaler, run the network, scale the output back. This module does exactly that, reading the
model directory `NeuralForecast.save` wrote (safetensors weights, hyper-parameters as JSON)
into networks whose parameter names match NeuralForecast's, so the weights load strictly.
`system/tests/test_predictor_fast.py` proves the numbers equal `NeuralForecast.predict`'s.

A format-2 checkpoint outside that shape raises `Unsupported`; the predictor then falls back
to NeuralForecast itself. A directory that is not format 2 at all is an error (ValueError).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["FastModel", "Unsupported", "future_dates", "load", "window"]

#: point losses whose `domain_map` is the identity and whose output has one channel
POINT_LOSSES = frozenset({"MAE", "MSE", "RMSE", "MAPE", "SMAPE", "HuberLoss"})
SCALERS = frozenset({None, "identity", "standard", "robust"})
ACTIVATIONS = frozenset({"ReLU", "Softplus", "Tanh", "SELU", "LeakyReLU", "Sigmoid"})


class Unsupported(ValueError):
    """The checkpoint needs NeuralForecast's own predict (another model, exogenous inputs…)."""


class _MLP(nn.Module):
    """neuralforecast.models.MLP's forward for insample_y only (same parameter names)."""

    def __init__(self, h: int, input_size: int, hidden_size: int, num_layers: int) -> None:
        super().__init__()
        self.h = h
        layers = [nn.Linear(input_size, hidden_size)]
        layers += [nn.Linear(hidden_size, hidden_size) for _ in range(num_layers - 1)]
        self.mlp = nn.ModuleList(layers)
        self.out = nn.Linear(hidden_size, h)

    def forward(self, insample_y: torch.Tensor, insample_mask: torch.Tensor) -> torch.Tensor:
        y = insample_y.clone()
        for layer in self.mlp:
            y = torch.relu(layer(y))
        return self.out(y).reshape(len(insample_y), self.h, 1)


class _NHITSBlock(nn.Module):
    """neuralforecast.models.nhits.NHITSBlock with an identity basis, no exogenous inputs."""

    def __init__(
        self,
        h: int,
        input_size: int,
        n_theta: int,
        mlp_units: list[list[int]],
        pool_kernel: int,
        pooling_mode: str,
        interpolation_mode: str,
        dropout_prob: float,
        activation: str,
    ) -> None:
        super().__init__()
        self.h, self.input_size, self.interpolation_mode = h, input_size, interpolation_mode
        self.pooling_layer = getattr(nn, pooling_mode)(
            kernel_size=pool_kernel, stride=pool_kernel, ceil_mode=True
        )
        activ = getattr(nn, activation)()
        pooled = math.ceil(input_size / pool_kernel)
        layers: list[nn.Module] = [nn.Linear(pooled, mlp_units[0][0])]
        for units in mlp_units:
            layers += [nn.Linear(units[0], units[1]), activ]
            if dropout_prob > 0:
                layers.append(nn.Dropout(p=dropout_prob))
        layers.append(nn.Linear(mlp_units[-1][1], n_theta))
        self.layers = nn.Sequential(*layers)

    def forward(self, residuals: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pooled = self.pooling_layer(residuals.unsqueeze(1)).squeeze(1)
        theta = self.layers(pooled)
        backcast = theta[:, : self.input_size]
        knots = theta[:, self.input_size :].reshape(len(theta), 1, -1)
        forecast = F.interpolate(knots, size=self.h, mode=self.interpolation_mode)
        return backcast, forecast.permute(0, 2, 1)


class _NHITS(nn.Module):
    """neuralforecast.models.NHITS's forward (identity stacks, point output)."""

    def __init__(self, h: int, input_size: int, hp: dict[str, Any]) -> None:
        super().__init__()
        if any(t != "identity" for t in hp["stack_types"]):
            raise Unsupported(f"NHITS stack types {hp['stack_types']}")
        if hp["interpolation_mode"] not in ("linear", "nearest"):
            raise Unsupported(f"NHITS interpolation {hp['interpolation_mode']!r}")
        if hp["activation"] not in ACTIVATIONS or hp["pooling_mode"] not in (
            "MaxPool1d",
            "AvgPool1d",
        ):
            raise Unsupported(f"NHITS activation/pooling {hp['activation']}/{hp['pooling_mode']}")
        self.h = h
        blocks = []
        for i, n in enumerate(hp["n_blocks"]):
            for _ in range(n):
                n_theta = input_size + max(h // hp["n_freq_downsample"][i], 1)
                blocks.append(
                    _NHITSBlock(
                        h,
                        input_size,
                        n_theta,
                        hp["mlp_units"],
                        hp["n_pool_kernel_size"][i],
                        hp["pooling_mode"],
                        hp["interpolation_mode"],
                        hp["dropout_prob_theta"],
                        hp["activation"],
                    )
                )
        self.blocks = nn.ModuleList(blocks)

    def forward(self, insample_y: torch.Tensor, insample_mask: torch.Tensor) -> torch.Tensor:
        residuals = insample_y.flip(dims=(-1,))
        mask = insample_mask.flip(dims=(-1,))
        forecast = insample_y[:, -1:, None]
        for block in self.blocks:
            backcast, block_forecast = block(residuals)
            residuals = (residuals - backcast) * mask
            forecast = forecast + block_forecast
        return forecast


def _masked_median(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    med, _ = x.masked_fill(mask < 1, float("nan")).nanmedian(dim=1, keepdim=True)
    return torch.nan_to_num(med, nan=0.0)


def _masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    mean = x.masked_fill(mask < 1, float("nan")).nanmean(dim=1, keepdim=True)
    return torch.nan_to_num(mean, nan=0.0)


def _statistics(
    scaler: str | None, x: torch.Tensor, mask: torch.Tensor, eps: float = 1e-6
) -> tuple[torch.Tensor, torch.Tensor]:
    """(shift, scale) per window over the time axis, as neuralforecast's TemporalNorm(dim=1)."""
    if scaler in (None, "identity"):
        shape = (x.shape[0], 1, *x.shape[2:])
        return torch.zeros(shape, dtype=x.dtype), torch.ones(shape, dtype=x.dtype)
    means = _masked_mean(x, mask)
    stds = torch.sqrt(_masked_mean((x - means) ** 2, mask))
    if scaler == "standard":
        stds[stds == 0] = 1.0
        return means, stds + eps
    median = _masked_median(x, mask)
    mad = _masked_median(torch.abs(x - median), mask)
    mad = mad * (mad > 0) + (stds * 0.6744897501960817) * (mad == 0)
    mad[mad == 0] = 1.0
    return median, mad + eps


@dataclass
class FastModel:
    """A loaded network and what predicting with it needs."""

    model_class: str
    h: int
    input_size: int
    scaler: str | None
    freq: str
    net: nn.Module
    nbytes: int

    def predict(self, windows: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """[B, input_size] windows and availability masks -> [B, h] forecasts.

        Each row is scaled by its own statistics, so one batched call equals B single ones.
        """
        b, length = windows.shape
        # the window NeuralForecast builds: input_size observations + h future rows, masked
        y = torch.cat([windows, torch.zeros(b, self.h)], dim=1).reshape(b, length + self.h, 1)
        m = torch.cat([masks, torch.zeros(b, self.h)], dim=1).reshape(b, length + self.h, 1)
        with torch.inference_mode():
            shift, scale = _statistics(self.scaler, y, m)
            z = (y - shift) / scale
            out = self.net(z[:, :length, 0], m[:, :length, 0])  # [B, h, 1]
            return (out * scale + shift).reshape(b, self.h)


def window(values: list[float], input_size: int) -> tuple[list[float], list[float]]:
    """The last input_size values, left-padded with masked zeros when the series is short."""
    tail = values[-input_size:]
    pad = input_size - len(tail)
    return [0.0] * pad + tail, [0.0] * pad + [1.0] * len(tail)


def load(path: str | Path) -> FastModel:
    """Read a directory written by `NeuralForecast.save` (format 2: safetensors + JSON)."""
    from safetensors import safe_open

    directory = Path(path)
    if not directory.is_dir():
        raise FileNotFoundError(f"no model directory at {directory}")
    if not (directory / "configuration.json").is_file():
        # not what this NeuralForecast saves (a legacy pickle directory, or damage): an
        # error to look at, not something to hand to a slower loader
        raise ValueError(f"{directory} holds no configuration.json; retrain the model")
    config = json.loads((directory / "configuration.json").read_text())
    if config.get("nf_format") != "2":
        raise Unsupported("not a format-2 NeuralForecast directory")
    conf = config["configuration"]
    if conf.get("local_scaler_type") is not None:
        raise Unsupported(f"local scaler {conf['local_scaler_type']!r}")
    files = sorted(
        p
        for p in directory.glob("*.safetensors")
        if p.name not in ("dataset.safetensors", "configuration.safetensors")
    )
    if len(files) != 1:
        raise Unsupported(f"{len(files)} model files; the fast path serves one model")
    with safe_open(str(files[0]), framework="pt") as fh:
        meta = fh.metadata() or {}
        tensors = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118 - not a dict
    model_class = meta.get("model_class")
    hp = json.loads(meta.get("hyper_parameters", "{}"))
    h, input_size = int(hp["h"]), int(hp["input_size"])
    loss = hp.get("loss") or {}
    if loss.get("cls") not in POINT_LOSSES:
        raise Unsupported(f"loss {loss.get('cls')!r}")
    if any(hp.get(k) for k in ("futr_exog_list", "hist_exog_list", "stat_exog_list")):
        raise Unsupported("exogenous features")
    if hp.get("exclude_insample_y") or int(hp.get("n_series") or 1) != 1:
        raise Unsupported("exclude_insample_y or several series")
    if hp.get("scaler_type") not in SCALERS:
        raise Unsupported(f"scaler {hp.get('scaler_type')!r}")
    if int(hp.get("inference_input_size") or input_size) != input_size:
        raise Unsupported("inference_input_size differs from input_size")
    net: nn.Module
    if model_class == "MLP":
        net = _MLP(h, input_size, int(hp["hidden_size"]), int(hp["num_layers"]))
    elif model_class == "NHITS":
        net = _NHITS(h, input_size, hp)
    else:
        raise Unsupported(f"model class {model_class!r}")
    try:
        net.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        raise Unsupported(f"weights do not fit the rebuilt {model_class}: {exc}") from exc
    net.eval()
    nbytes = sum(t.numel() * t.element_size() for t in net.state_dict().values())
    return FastModel(
        model_class, h, input_size, hp.get("scaler_type"), str(conf["freq"]), net, nbytes
    )


_FIXED = {
    "D": timedelta(days=1),
    "h": timedelta(hours=1),
    "H": timedelta(hours=1),
    "min": timedelta(minutes=1),
    "T": timedelta(minutes=1),
    "s": timedelta(seconds=1),
    "S": timedelta(seconds=1),
}


def future_dates(last: datetime, freq: str, h: int) -> list[datetime]:
    """The h timestamps after `last`, as NeuralForecast's make_future_dataframe gives them.

    Fixed steps and month starts are computed here; any other frequency goes to pandas
    (imported only then), which is what NeuralForecast uses.
    """
    match = re.fullmatch(r"(\d*)([A-Za-z]+)", freq)
    if match:
        n, unit = int(match.group(1) or 1), match.group(2)
        if unit in _FIXED:
            return [last + _FIXED[unit] * n * k for k in range(1, h + 1)]
        if unit == "MS" and last.day == 1 and last.time() == datetime.min.time():
            out = []
            for k in range(1, h + 1):
                months = last.month - 1 + n * k
                out.append(last.replace(year=last.year + months // 12, month=months % 12 + 1))
            return out
    import pandas as pd

    offset = pd.tseries.frequencies.to_offset(freq)
    return [(pd.Timestamp(last) + k * offset).to_pydatetime() for k in range(1, h + 1)]
