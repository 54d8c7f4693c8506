"""A restore's recovery point: rows committed after the backup and lost by the restore are the
window's loss, reported; a row the backup holds and the restore lost still fails the drill."""

from __future__ import annotations

from opsdrill.drill.integrity import IntegritySnapshot, RowSum


def _rows(**rows: str) -> dict[str, RowSum]:
    return {f"log_id={k.removeprefix('k')}": RowSum(v, v, False) for k, v in rows.items()}


def _snap(**rows: str) -> IntegritySnapshot:
    return IntegritySnapshot({"system_logs": _rows(**rows)})


BEFORE = _snap(k1="a", k2="b", k3="c", k4="d")  # 3 and 4 written after the backup
BACKUP = _snap(k1="a", k2="b-old")  # row 2 changed after the backup too


def test_without_a_recovery_point_every_loss_fails() -> None:
    after = _snap(k1="a", k2="b-old")
    assert BEFORE.compare(after) == [
        "system_logs: 2 committed row(s) missing after the drill (log_id=3, log_id=4)",
        "system_logs: 1 committed row(s) altered (log_id=2)",
    ]


def test_rows_after_the_recovery_point_are_the_windows_loss_not_a_failure() -> None:
    audit = BEFORE.audit(_snap(k1="a", k2="b-old"), BACKUP)
    assert audit.problems == []
    assert audit.window == {"system_logs": ["log_id=3", "log_id=4", "log_id=2"]}
    note = audit.window_note() or ""
    assert note.startswith("3 row(s) committed after the recovery point"), note
    assert "system_logs: 3 (log_id=3, log_id=4, log_id=2)" in note


def test_a_row_the_backup_holds_must_survive_the_restore() -> None:
    audit = BEFORE.audit(_snap(k2="b-old"), BACKUP)  # the restore lost row 1
    assert audit.problems == ["system_logs: 1 committed row(s) missing after the drill (log_id=1)"]


def test_a_row_altered_to_something_the_backup_does_not_hold_fails() -> None:
    audit = BEFORE.audit(_snap(k1="a", k2="garbled"), BACKUP)
    assert audit.problems == ["system_logs: 1 committed row(s) altered (log_id=2)"]
    assert audit.window == {"system_logs": ["log_id=3", "log_id=4"]}  # still only the window
