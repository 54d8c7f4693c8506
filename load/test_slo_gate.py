"""The SLO gate (`pytest load`): one paced load run, one verdict per SLO in slo.yaml.

A run that missed its target load fails `test_target_load_reached` and turns every other
verdict INCONCLUSIVE, so the session can never pass without the load having happened.
"""

from __future__ import annotations

import pytest

from opsdrill.load import LoadResult, Verdict
from opsdrill.slo import load_slo_file

from .conftest import SLO_FILE

pytestmark = pytest.mark.load  # refused on production without --allow-load-on-production

SLOS = [s.name for s in load_slo_file(SLO_FILE).slos]


@pytest.mark.runbook("2.3")
def test_target_load_reached(gate_result: LoadResult) -> None:
    assert gate_result.load_reached, gate_result.summary()


@pytest.mark.runbook("2.3")
@pytest.mark.parametrize("slo", SLOS)
def test_slo(gate_result: LoadResult, slo: str) -> None:
    verdict = next(v for v in gate_result.verdicts if v.slo == slo)
    if verdict.verdict is Verdict.SKIPPED:
        pytest.skip(f"{slo}: no events of this SLI in the run ({verdict.measured})")
    assert verdict.verdict is Verdict.PASS, f"{verdict.line()}\n{verdict.budget}"
