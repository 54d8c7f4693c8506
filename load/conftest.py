"""The load gate's runs: one paced load per profile of the SLO file's gate, judged per SLO.

The profiles (`gate: profiles:` in slo.yaml, or the file `--slo` names) run lazily, once per
session each; `<reports>/load/slo.json` holds every profile's verdicts (see `GateRuns.write`).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from opsdrill.load import LoadProfile, LoadResult, gate_json, run_load
from opsdrill.load.gate import exercises, size_statement
from opsdrill.load.pytest_gate import selected
from opsdrill.slo.model import SloFile
from opsdrill.targets.base import Target


def pytest_report_header(config: pytest.Config) -> list[str]:
    """Say up front what each profile is too small to judge."""
    slos = selected()
    lines = [f"SLO file: {slos.path}"]
    for p in slos.gate.profiles:
        lines.append(f"gate profile {p.name}: {p.rate:g}/s for {p.duration:g} s "
                     f"({p.events} requests, {p.runs} training runs)")  # fmt: skip
        lines += [f"  {s}" for slo in slos.slos if (s := size_statement(p, slo,
                  slos.gate.confidence)) and exercises(p, slo)]  # fmt: skip
    return lines


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "profile" not in metafunc.fixturenames:
        return
    slos = selected()
    if not slos.gate.profiles:
        raise pytest.UsageError(f"{slos.path}: no 'gate: profiles:' to run; declare at least one")
    if "slo" in metafunc.fixturenames:
        pairs = [(p.name, s.name) for p in slos.gate.profiles for s in slos.slos
                 if exercises(p, s)]  # fmt: skip
        metafunc.parametrize(("profile", "slo"), pairs, ids=[f"{p}:{s}" for p, s in pairs])
    else:
        metafunc.parametrize("profile", [p.name for p in slos.gate.profiles])


class GateRuns:
    """Runs each profile at most once and keeps `<reports>/load/slo.json` up to date."""

    def __init__(self, target: Target, slo_file: SloFile, out: Path) -> None:
        self.target, self.slo_file, self.out = target, slo_file, out
        self.results: dict[str, LoadResult] = {}

    def get(self, name: str) -> LoadResult:
        if name not in self.results:
            profile = LoadProfile.from_gate(self.slo_file.gate.profile(name))
            ep = self.target.endpoints
            result = run_load(ep.api_url, profile, slo_file=self.slo_file, api_key=ep.api_key,
                              reports_dir=self.out / name)  # fmt: skip
            self.results[name] = result
            self.write()
            print("\n" + result.summary())
        return self.results[name]

    def write(self) -> Path:
        """slo.json: every profile run so far (see `opsdrill.load.gate_json`)."""
        order = [p.name for p in self.slo_file.gate.profiles if p.name in self.results]
        data = gate_json({n: self.results[n] for n in order})
        self.out.mkdir(parents=True, exist_ok=True)
        path = self.out / "slo.json"
        path.write_text(json.dumps(data, indent=2) + "\n")
        return path


@pytest.fixture(scope="session")
def gate_runs(target: Target, reports_dir: Path, slo_file: SloFile) -> GateRuns:
    return GateRuns(target, slo_file, reports_dir / "load")


@pytest.fixture
def gate_result(gate_runs: GateRuns, profile: str) -> LoadResult:
    """The profile's run (started by the first test that needs it); artefacts go to
    <reports>/load/<profile>/ (Locust's CSV and HTML, logs)."""
    return gate_runs.get(profile)
