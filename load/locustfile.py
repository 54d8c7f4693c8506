"""The forecasting stack's traffic mix, paced to a target arrival rate (open model).

Run it through `opsdrill.load.run_load` (or `pytest load`), which sets OPSDRILL_LOAD_CONFIG:
the shared start time, ramp, duration, per-user rate, mix and series. By hand, on other
hosts: see load/README.md. Every request is timed from when it was due, into HDR histograms
that workers ship to the master; Locust's own CSV/HTML are kept as artefacts.

Mix (shares of the arrival rate, `opsdrill.load.config.DEFAULT_MIX`): forecasts of popular
series (cache hits), forecasts of the long tail (model inference after each new model),
POST /predict, /health, /metrics scrapes, /models and /runs/{id} reads; plus one user that
submits a small training run every `run_interval` seconds.
"""

from __future__ import annotations

from locust import FastHttpUser, constant, task

from opsdrill.load.locust_support import paced_loop, recorder, submit_loop

_cfg = recorder.cfg()
_KINDS = list(_cfg.mix)
_WEIGHTS = [_cfg.mix[k] for k in _KINDS]


class ApiUser(FastHttpUser):
    """A client of the API: one request per due time, whatever kind the mix draws."""

    wait_time = constant(0)
    network_timeout = _cfg.timeout
    connection_timeout = _cfg.timeout
    weight = 1

    @task
    def paced(self) -> None:
        paced_loop(self, _KINDS, _WEIGHTS, _cfg.rate_per_user)


class RunSubmitter(FastHttpUser):
    """The scheduler: a training run every `run_interval` seconds (one user in the fleet)."""

    wait_time = constant(0)
    network_timeout = _cfg.timeout
    connection_timeout = _cfg.timeout
    fixed_count = 1

    @task
    def submit(self) -> None:
        submit_loop(self)
