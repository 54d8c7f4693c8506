"""The integrity oracle covers every table, unfinished runs' committed fields, the model files
and the newest backup — against the real embedded stack's database and files.

The meta-test runs a real drill whose procedure, besides recovering, deletes one committed row
and one model file: the drill must fail naming both.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from opsdrill.drill import DrillSpec, run_drill
from opsdrill.drill.detectors import FaultProbes, Probes
from opsdrill.drill.integrity import take_snapshot
from opsdrill.drill.procedure import Procedure, Step
from opsdrill.faults import LockContention
from opsdrill.recovery.database import terminate_blocking_session
from opsdrill.targets.local import LocalTarget

pytestmark = pytest.mark.slow


def _snap(stack: LocalTarget, before: object = None) -> object:
    ep = stack.endpoints
    return take_snapshot(ep.dsn, ep.models_dir, ep.backups_dir, before)  # type: ignore[arg-type]


@pytest.fixture
def open_run(stack: LocalTarget) -> Iterator[int]:
    """A run row in state `running` (no worker: the test moves it on by hand), removed after."""
    with psycopg.connect(stack.endpoints.admin_dsn or "", autocommit=True) as conn:
        run_id = conn.execute(
            "INSERT INTO runs (run_name, experiment_id, status, model_name, series_id, horizon, "
            "start_time, heartbeat_at) SELECT 'integrity-probe', experiment_id, 'running', "
            "'MLP', 'airpassengers', 12, now(), now() FROM experiments LIMIT 1 RETURNING run_id"
        ).fetchone()[0]  # type: ignore[index]
    yield int(run_id)
    with psycopg.connect(stack.endpoints.admin_dsn or "", autocommit=True) as conn:
        conn.execute("DELETE FROM runs WHERE run_id = %s", (run_id,))


def test_every_table_model_file_and_the_newest_backup_are_covered(stack: LocalTarget) -> None:
    snap = _snap(stack)
    assert {"series_catalog", "system_logs", "runs", "models", "metrics", "series",
            "experiments"} <= set(snap.rows)  # type: ignore[attr-defined]  # fmt: skip
    files = snap.files  # type: ignore[attr-defined]
    assert any(label.startswith("model file ") for label in files), files
    assert any(label.startswith("newest backup full_") for label in files), files
    assert snap.compare(_snap(stack, snap)) == []  # type: ignore[attr-defined]


def test_an_unfinished_run_may_move_on_but_its_committed_fields_must_survive(
    stack: LocalTarget, open_run: int
) -> None:
    admin = stack.endpoints.admin_dsn or ""
    before = _snap(stack)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute("UPDATE runs SET status = 'failed', end_time = now(), error_message = "
                     "'worker lost' WHERE run_id = %s", (open_run,))  # fmt: skip
    assert before.compare(_snap(stack, before)) == [], "a status change is legitimate"  # type: ignore[attr-defined]
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute("UPDATE runs SET horizon = 24 WHERE run_id = %s", (open_run,))
    problems = before.compare(_snap(stack, before))  # type: ignore[attr-defined]
    assert problems == [f"runs: 1 committed row(s) altered (run_id={open_run})"], problems


@pytest.fixture
def oldest_model_file(stack: LocalTarget, tmp_path: Path) -> Iterator[Path]:
    """A file of the oldest model, copied aside and put back after the test."""
    with psycopg.connect(stack.endpoints.admin_dsn or "") as conn:
        (path,) = conn.execute("SELECT path FROM models ORDER BY model_id LIMIT 1").fetchone()  # type: ignore[misc]
    victim = sorted(p for p in Path(path).rglob("*") if p.is_file())[0]
    kept = tmp_path / victim.name
    shutil.copy2(victim, kept)
    yield victim
    with contextlib.suppress(OSError):
        shutil.copy2(kept, victim)


def test_a_drill_that_loses_a_row_and_a_model_file_fails_naming_both(
    stack: LocalTarget, oldest_model_file: Path, tmp_path: Path
) -> None:
    admin = stack.endpoints.admin_dsn or ""
    with psycopg.connect(admin, autocommit=True) as conn:  # a committed row to lose; a fresh
        # stack may have logged nothing yet
        (log_id,) = conn.execute(  # type: ignore[misc]
            "INSERT INTO system_logs (log_level, log_message, logger) "
            "VALUES ('INFO', 'opsdrill integrity test row', 'opsdrill.tests') RETURNING log_id"
        ).fetchone()

    def careless() -> str:  # a clean-up that takes more than it should
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute("DELETE FROM system_logs WHERE log_id = %s", (log_id,))
        oldest_model_file.unlink()
        return f"deleted system_logs row {log_id} and {oldest_model_file}"

    runbook = terminate_blocking_session(stack)
    recover = Procedure(runbook.runbook, runbook.title,
                        (*runbook.steps, Step("clean up (carelessly)", careless)))  # fmt: skip
    probes, fault_probes = Probes(stack), FaultProbes(stack)
    spec = DrillSpec(
        name="lock-contention-careless",
        title="Lock on runs; the procedure loses data",
        runbook="5.2.2",
        severity="P1",
        fault=LockContention(stack, table="runs", mode="ACCESS EXCLUSIVE"),
        effect=fault_probes.forecast_hangs(),
        detectors=[fault_probes.lock_waiters()],
        steady=probes.steady(),
        recover=recover,
        availability_url=f"{stack.endpoints.api_url}/health",
        endpoints=stack.endpoints,
    )
    result = run_drill(spec, tmp_path)
    assert not result.passed
    lost = "\n".join(result.errors)
    assert (
        f"data lost: system_logs: 1 committed row(s) missing after the drill (log_id={log_id})"
        in lost
    ), lost
    assert f"{oldest_model_file.name}: missing after the drill" in lost, lost
    assert str(oldest_model_file.parent) in lost
