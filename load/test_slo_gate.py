"""The SLO gate (`pytest load`): one paced load per gate profile, one verdict per SLO it drives.

A run that did not send its configured load, or sent it late, fails `test_load_as_configured`
and turns every SLO INCONCLUSIVE, so the session can never pass without the load having
happened. An SLO is MET only with enough events to tell (slo.yaml `gate:`); one the profile is
too small for is skipped saying so (and announced in the header), never passed.
"""

from __future__ import annotations

import pytest

from opsdrill.load import LoadResult, Verdict

pytestmark = pytest.mark.load  # refused on production without --allow-load-on-production


@pytest.mark.runbook("2.3")
def test_load_as_configured(gate_result: LoadResult) -> None:
    assert not gate_result.load_problem(), gate_result.summary()


@pytest.mark.runbook("2.3")
def test_slo(gate_result: LoadResult, slo: str) -> None:
    verdict = next(v for v in gate_result.verdicts if v.slo == slo)
    if verdict.verdict is Verdict.INCONCLUSIVE and not verdict.sized:
        pytest.skip(f"{verdict.line()}")
    assert verdict.verdict is Verdict.MET, f"{verdict.line()}\n{verdict.budget}"
