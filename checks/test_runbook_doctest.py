"""The project's own runbook: every SQL statement in docs/RUNBOOK.md still fits the schema."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsdrill.doctest import database_for_target, doctest

pytestmark = pytest.mark.readonly

RUNBOOK = Path(__file__).resolve().parent.parent / "docs" / "RUNBOOK.md"


@pytest.mark.runbook("12")
@pytest.mark.slow  # clones the database for VACUUM & co. (~5 s): for the gate, not the smoke job
def test_runbook_sql_has_no_broken_statement(target) -> None:
    """Safe on production too: there only reads run; writes are PREPAREd or skipped."""
    report = doctest(RUNBOOK, database_for_target(target))
    assert report.results, f"no SQL statement found in {RUNBOOK}"
    assert not report.broken, report.failure_message()
