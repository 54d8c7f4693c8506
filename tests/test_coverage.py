"""Runbook coverage through the front door: only tests that ran cover a procedure, a procedure
whose tests all skipped is "skipped", and --coverage-min fails the session below its figure —
the same with and without xdist."""

from __future__ import annotations

import json

import pytest

from opsdrill.runbook import NOT_APPLICABLE, PROCEDURES

TESTS = """
import pytest

@pytest.mark.runbook("3.1.1")
def test_health(): pass

@pytest.mark.runbook("3.1.1")
def test_backup_age(): assert 0, "backup is 30 h old"

@pytest.mark.runbook("4.2")
def test_rules(): pass

@pytest.mark.runbook("5.2.3")
def test_gpu_oom(): pytest.skip("no CUDA here")

@pytest.mark.runbook("5.2.4")
@pytest.mark.skipif(True, reason="no data filesystem")
def test_disk_full(): pass

@pytest.mark.runbook("5.2.4")
@pytest.mark.xfail(reason="known bug", strict=True)
def test_disk_full_alert(): assert 0

@pytest.fixture
def broken(): raise RuntimeError("fixture broke")

@pytest.mark.runbook("9")
def test_incident_record(broken): pass
"""
#: everything passes; the one test of 5.2.3 skips
MIN_TESTS = """
import pytest

@pytest.mark.runbook("3.1.1")
def test_health(): pass

@pytest.mark.runbook("3.1.1")
def test_backup_age(): pass

@pytest.mark.runbook("4.2")
def test_rules(): pass

@pytest.mark.runbook("5.2.3")
def test_gpu_oom(): pytest.skip("no CUDA here")
"""
COVERED = 2  # 3.1.1 (one passed, one failed: both ran) and 4.2
APPLICABLE = len(PROCEDURES) - len(NOT_APPLICABLE)  # those are listed with their reason
PERCENT = 100 * COVERED / APPLICABLE


def coverage_json(pytester: pytest.Pytester) -> dict:  # type: ignore[type-arg]
    return json.loads((pytester.path / "out" / "runbook-coverage.json").read_text())


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_only_tests_that_ran_cover_a_procedure(pytester: pytest.Pytester, workers) -> None:
    pytester.makepyfile(TESTS)
    result = pytester.runpytest(*workers, "--opsdrill-reports", "out")
    result.stdout.fnmatch_lines([
        f"*runbook coverage: {COVERED}/{APPLICABLE} procedures have a test that ran*",
        "3.1.1*failed*(1 failed, 1 passed)*",
        "5.2.3*Out of memory*skipped*(1 skipped)*",
        "5.2.4*Disk full*skipped*(2 skipped)*",
        "9 *Incident records*error*(1 error)*",
        "skipped (no test ran): 5.2.3, 5.2.4",
    ])  # fmt: skip
    data = coverage_json(pytester)
    rows = {r["procedure"]: r for r in data["procedures"]}
    assert (rows["5.2.3"]["result"], rows["5.2.3"]["covered"]) == ("skipped", False)
    assert (rows["5.2.4"]["result"], rows["5.2.4"]["covered"]) == ("skipped", False)
    assert (rows["9"]["result"], rows["9"]["covered"]) == ("error", False), "setup never ran it"
    assert (rows["3.1.1"]["result"], rows["3.1.1"]["covered"]) == ("failed", True)
    assert rows["4.2"]["covered"] and rows["5.2.1"]["result"] == "not covered"
    assert data["summary"] == {"covered": COVERED, "skipped": 2, "total": APPLICABLE,
                               "percent": round(PERCENT, 1), "minimum": None}  # fmt: skip


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_coverage_min_fails_below_and_passes_above(pytester: pytest.Pytester, workers) -> None:
    pytester.makepyfile(MIN_TESTS)
    above = pytester.runpytest(*workers, "--coverage-min", f"{PERCENT - 0.1:.1f}")
    assert above.ret == pytest.ExitCode.OK, above.stdout.str()[-2000:]
    assert "is below --coverage-min" not in above.stdout.str()

    # one more procedure would reach it, but its only test skipped: it does not count
    below = pytester.runpytest(*workers, "--coverage-min", f"{PERCENT + 0.1:.1f}")
    assert below.ret == pytest.ExitCode.TESTS_FAILED
    below.stdout.fnmatch_lines([
        f"runbook coverage {PERCENT:.1f} % is below --coverage-min {PERCENT + 0.1:.1f} %: "
        f"{COVERED} of {APPLICABLE} procedures covered by a test that ran",
    ])  # fmt: skip
    below.assert_outcomes(passed=3, skipped=1)


def test_coverage_min_must_be_a_percentage(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_x(): pass\n")
    result = pytester.runpytest("--coverage-min", "150")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--coverage-min 150 is not a percentage: give 0 to 100*"])
