"""What the Locust processes are told: one JSON document in an environment variable.

The parent (`run_load`) writes it; the locustfile reads it in every process (master, local or
worker), so a worker on another host needs the same variable (see load/README.md).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field

__all__ = ["CACHE_BYPASS", "DEFAULT_MIX", "ENV_CONFIG", "ENV_KEY", "LoadConfig"]

ENV_CONFIG = "OPSDRILL_LOAD_CONFIG"
ENV_KEY = "OPSDRILL_API_KEY"  # kept out of the JSON so reports never hold it

#: share of the arrival rate per request kind; run submissions have their own, low rate
DEFAULT_MIX = {
    "forecast:popular": 0.50,  # a few popular series: answered from the forecast cache
    "predict:popular": 0.10,
    "forecast:long-tail": 0.20,  # the other series: cache misses after each new model
    "health": 0.10,
    "metrics": 0.05,  # a scraper's share
    "models": 0.03,
    "runs:get": 0.02,
}
#: the route template each kind hits, as the app labels its metrics (and slo.yaml names paths)
#: the app's switch that makes a forecast run the model instead of answering from its result
#: cache (honoured only with a valid X-API-Key; an app without it ignores the header)
CACHE_BYPASS = {"X-Forecast-Cache": "bypass"}


@dataclass
class LoadConfig:
    t0: float  # wall-clock start of the ramp, shared by every process
    ramp: float
    duration: float
    rate_per_user: float
    users: int
    mix: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_MIX))
    popular: list[str] = field(default_factory=list)
    long_tail: list[str] = field(default_factory=list)
    horizons: dict[str, int] = field(default_factory=dict)  # series -> its model's horizon
    run_interval: float = 0.0  # seconds between training-run submissions; 0 = none
    run_max_steps: int = 10
    timeout: float = 5.0
    late_after: float = 0.1  # sent this long after its due time: late (slo.yaml gate)
    result_path: str = ""
    raw_dir: str = ""  # when set, every process also writes its raw samples (for tests)
    seed: int = 0
    t0_file: str = ""  # when set, t0 is read from this file once the parent writes it

    @property
    def end(self) -> float:
        return self.t0 + self.ramp + self.duration

    def to_env(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_env(cls) -> LoadConfig:
        raw = os.environ.get(ENV_CONFIG)
        if not raw:
            raise RuntimeError(f"{ENV_CONFIG} is not set: start Locust through opsdrill.load")
        return cls(**json.loads(raw))
