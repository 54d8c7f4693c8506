"""The incident record is one versioned artefact: what is written reads back the same, an
older record reads with defaults, and one from a newer opsdrill is refused, not misread."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsdrill.drill.incident import SCHEMA, Incident
from opsdrill.errors import UsageError


def test_written_reads_back_the_same(tmp_path: Path) -> None:
    inc = Incident(
        incident_id="INC-1", drill="db-sigkill", passed=True, mttd_seconds=0.35,
        procedure={"runbook": "5.2.2", "title": "fix 1", "steps": []},
        timeline=[{"name": "injected", "t": 1.0, "detail": "", "wall": "x"}],
        samples=[[0.1, True, 200, 0.004]],
    )  # fmt: skip
    path = inc.write(tmp_path / "incidents")
    assert path.name == "INC-1.json" and f'"schema": {SCHEMA}' in path.read_text()
    assert Incident.read(path) == inc


def test_an_older_record_reads_with_defaults_and_says_what_it_lacks() -> None:
    old = Incident.from_dict({"incident_id": "INC-0", "drill": "old", "mttr_seconds": 3.2,
                              "detections": None, "unknown_key": 1})  # fmt: skip
    assert old.mttr_seconds == 3.2 and old.detections == [] and old.timeline == []
    assert not old.procedure_recorded, "a record without `procedure` predates procedures"
    assert Incident.from_dict(
        {"incident_id": "I", "drill": "d", "procedure": None}
    ).procedure_recorded


def test_a_newer_record_is_refused_in_one_sentence() -> None:
    with pytest.raises(UsageError, match=f"schema {SCHEMA + 1}, newer than this opsdrill"):
        Incident.from_dict({"incident_id": "INC-9", "drill": "x", "schema": SCHEMA + 1})
