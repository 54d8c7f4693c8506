"""The ops CLI against the live stack: backup → restore round trip, a verified archive,
weekly maintenance, log retention, train-now, and clean failures."""

from __future__ import annotations

import gzip
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from nf_auto_runner.ops.archive import file_checksum

from opsdrill.plugin.waiting import until
from system.tests.conftest import App, Postgres

TABLES_SQL = "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"


def table_digests(pg: Postgres, max_log_id: int) -> dict[str, dict[str, Any]]:
    """md5 over each table's rows in a stable order (system_logs up to max_log_id)."""
    out = {}
    for row in pg.sql(TABLES_SQL):
        t = row["tablename"]
        where = f"WHERE log_id <= {max_log_id}" if t == "system_logs" else ""
        out[t] = pg.sql(
            f"SELECT count(*) AS n, md5(string_agg(x::text, '|' ORDER BY x::text))"
            f" AS h FROM {t} x {where}"
        )[0]
    return out


def _quiet(app: App, pg: Postgres) -> None:
    for r in pg.sql("SELECT run_id FROM runs WHERE status IN ('scheduled', 'running')"):
        app.admin.post(f"/runs/{r['run_id']}/cancel")
    until(
        lambda: (
            not pg.sql(
                "SELECT 1 FROM runs WHERE status = 'running' AND "
                "heartbeat_at > now() - interval '3 seconds'"
            )
        ),
        10,
        "idle",
    )


def test_backup_restore_round_trip_is_identical(healthy: App, pg: Postgres, trained: dict) -> None:
    _quiet(healthy, pg)
    max_log = pg.sql("SELECT COALESCE(max(log_id), 0) AS m FROM system_logs")[0]["m"]
    before = table_digests(pg, max_log)
    done = healthy.ops("backup")
    assert done.returncode == 0, done.stderr
    path = Path(done.stdout.strip())
    assert path.parent == healthy.home / "backups" and path.name.startswith("full_")
    assert path.name.endswith(".dump.gz") and path.stat().st_size > 1000
    # changes after the backup that the restore must undo
    healthy.admin.post(
        "/runs", json={"series_id": "synthetic_3", "horizon": 7, "run_name": "after-backup"}
    )
    pg.sql("DELETE FROM series WHERE series_id = 'airpassengers'")  # the §5.3.2 data loss
    lost = healthy.client.get("/forecast/airpassengers", params={"horizon": 3})
    assert lost.status_code == 404 and "no observations" in lost.json()["detail"]
    restored = healthy.ops("restore")
    assert restored.returncode == 0, restored.stderr
    info = json.loads(restored.stdout)
    assert info["restored_from"] == str(path) and Path(info["safety_dump"]).exists()
    assert table_digests(pg, max_log) == before
    assert not (healthy.home / ".maintenance").exists()
    until(lambda: healthy.client.get("/health").status_code == 200, 10, "healthy again")
    fc = healthy.client.get("/forecast/airpassengers", params={"horizon": 3})
    assert fc.status_code == 200 and fc.json()["run_id"] == trained["run_id"]


def test_restore_refuses_cleanly_while_a_superuser_session_is_connected(
    healthy: App, pg: Postgres
) -> None:
    import psycopg

    assert healthy.ops("backup").returncode == 0
    runs_before = pg.sql("SELECT count(*) AS n FROM runs")[0]["n"]
    with psycopg.connect(pg.admin, autocommit=True) as superuser:
        done = healthy.ops("restore")
        assert superuser.execute("SELECT 1").fetchone() == (1,)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "cannot drop ts_forecast_system" in done.stderr and "nothing was changed" in done.stderr
    assert pg.sql("SELECT count(*) AS n FROM runs")[0]["n"] == runs_before
    assert not (healthy.home / ".maintenance").exists()


def _old_run(pg: Postgres, status: str, days: int, children: bool) -> int:
    run_id = pg.sql(
        "INSERT INTO runs (run_name, experiment_id, status, model_name, series_id, horizon, "
        "created_at, start_time, end_time, execution_duration_seconds) SELECT 'old', "
        "experiment_id, %s, 'MLP', 'airpassengers', 12, now() - make_interval(days => %s), "
        "now() - make_interval(days => %s), now() - make_interval(days => %s), 5 "
        "FROM experiments WHERE experiment_name = 'default' RETURNING run_id",
        (status, days, days, days),
    )[0]["run_id"]
    if children:
        pg.sql(
            "INSERT INTO models (run_id, model_name, series_id, horizon, path, "
            "training_duration_seconds, model_size_bytes) VALUES (%s, 'MLP', "
            "'airpassengers', 12, '/nowhere', 1.5, 1234)",
            (run_id,),
        )
        pg.sql(
            "INSERT INTO metrics (run_id, name, value) VALUES (%s, 'mae', 1.5), (%s, 'rmse', 2.5)",
            (run_id, run_id),
        )
    return run_id


def test_archive_deletes_exactly_what_it_exports(healthy: App, pg: Postgres) -> None:
    archived = {
        _old_run(pg, "completed", 200, True),
        _old_run(pg, "completed", 365, True),
        _old_run(pg, "failed", 190, False),
    }
    kept = {_old_run(pg, "cancelled", 200, True), _old_run(pg, "completed", 10, True)}
    out = Path(tempfile.mkdtemp(prefix="nf_archive_"))
    done = healthy.ops("archive", "--older-than-days", "180", "--out", str(out))
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert set(summary["run_ids"]) == archived
    assert summary["exported"] == summary["deleted"] == {"runs": 3, "models": 2, "metrics": 4}
    checksum, counts = file_checksum(Path(summary["file"]))
    assert checksum == summary["sha256"] and counts == summary["exported"]
    with gzip.open(summary["file"], "rt") as fh:
        rows = fh.read().splitlines()[1:]
    assert {int(r.split(",")[1]) for r in rows if r.startswith("runs,")} == archived
    left = {
        r["run_id"]
        for r in pg.sql("SELECT run_id FROM runs WHERE run_id = ANY(%s)", (list(archived | kept),))
    }
    assert left == kept
    orphans = pg.sql("SELECT count(*) AS n FROM metrics WHERE run_id = ANY(%s)", (list(archived),))
    assert orphans[0]["n"] == 0
    again = json.loads(healthy.ops("archive", "--older-than-days", "180", "--out", str(out)).stdout)
    assert again["exported"]["runs"] == 0 and again["file"] is None


def test_weekly_maintenance_and_log_retention(healthy: App, pg: Postgres) -> None:
    pg.sql(
        "INSERT INTO system_logs (created_at, log_level, log_message) VALUES "
        "(now() - interval '100 days', 'ERROR', 'ancient')"
    )
    done = healthy.ops("weekly-maintenance")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["materialized_views_refreshed"] == [
        "mv_experiment_summary",
        "mv_model_performance",
    ]
    assert summary["log_retention"]["system_logs_deleted"] >= 1
    assert (
        pg.sql("SELECT count(*) AS n FROM system_logs WHERE log_message = 'ancient'")[0]["n"] == 0
    )
    assert pg.sql("SELECT count(*) AS n FROM mv_experiment_summary")[0]["n"] >= 1
    kept = healthy.ops("log-retention", "--days", "90")
    assert kept.returncode == 0 and json.loads(kept.stdout)["days"] == 90


def test_train_now_trains_synchronously(healthy: App) -> None:
    done = healthy.ops(
        "train-now", "--series-id", "synthetic_1", "--horizon", "7", "--max-steps", "5"
    )
    assert done.returncode == 0, done.stderr
    run = json.loads(done.stdout)
    assert run["status"] == "completed" and run["series_id"] == "synthetic_1"
    fc = healthy.client.get("/forecast/synthetic_1", params={"horizon": 7}).json()
    assert fc["run_id"] == run["run_id"] and len(fc["forecast"]) == 7


def test_commands_fail_in_one_line_when_the_database_is_unreachable(healthy: App) -> None:
    env = dict(healthy.env, DATABASE_URL="postgresql://nf_app:pw@127.0.0.1:9/ts_forecast_system")
    for args in (["migrate"], ["seed"], ["backup"], ["weekly-maintenance"]):
        done = healthy.ops(*args, env=env)
        assert done.returncode != 0, args
        assert "Traceback" not in done.stderr, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and "127.0.0.1:9" in lines[0], done.stderr
        assert ":pw@" not in done.stderr
    missing = healthy.ops("restore", os.path.join(str(healthy.home), "nope.dump.gz"))
    assert missing.returncode != 0 and "does not exist" in missing.stderr
