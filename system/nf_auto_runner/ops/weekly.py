"""Weekly maintenance (runbook §3.2.1) and log retention, with the runbook's defects fixed:
statistics views are read by their real column names (relname, indexrelname), and each
materialized view has a unique index so it can be refreshed CONCURRENTLY.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from nf_auto_runner.config import Settings
from nf_auto_runner.db import connect

__all__ = ["log_retention", "weekly_maintenance"]

MATERIALIZED_VIEWS = ("mv_experiment_summary", "mv_model_performance")


def log_retention(settings: Settings, days: int) -> dict[str, Any]:
    """Delete system_logs rows and rotated/worker log files older than `days`."""
    with connect(settings.database_url, autocommit=True) as conn:
        cur = conn.execute(
            "DELETE FROM system_logs WHERE created_at < now() - make_interval(days => %s)", (days,)
        )
        rows = cur.rowcount
    cutoff = time.time() - days * 86400
    removed: list[str] = []
    logs_dir: Path = settings.logs_dir
    if logs_dir.exists():
        for p in logs_dir.iterdir():
            if p.name in ("app.log", "error.log") or not p.is_file():
                continue
            if p.stat().st_mtime < cutoff:
                p.unlink(missing_ok=True)
                removed.append(p.name)
    return {"days": days, "system_logs_deleted": rows, "files_deleted": removed}


def weekly_maintenance(settings: Settings) -> dict[str, Any]:
    """VACUUM ANALYZE, index/bloat report, stale runs, log retention, MV refresh."""
    t0 = time.monotonic()
    with connect(settings.database_url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
        unused = conn.execute(
            "SELECT relname AS table, indexrelname AS index, "
            "pg_relation_size(indexrelid) AS size_bytes FROM pg_stat_user_indexes "
            "WHERE idx_scan = 0 AND pg_relation_size(indexrelid) > 10 * 1024 * 1024 "
            "ORDER BY size_bytes DESC"
        ).fetchall()
        dead = conn.execute(
            "SELECT relname AS table, n_dead_tup AS dead, n_live_tup AS live, "
            "round(n_dead_tup::numeric / NULLIF(n_live_tup + n_dead_tup, 0), 4)::float "
            "AS dead_ratio FROM pg_stat_user_tables WHERE n_dead_tup > 1000 "
            "ORDER BY n_dead_tup DESC"
        ).fetchall()
        stale = conn.execute(
            "SELECT run_id, run_name, start_time::text, "
            "round(EXTRACT(EPOCH FROM now() - start_time) / 3600, 1)::float AS hours "
            "FROM runs WHERE status = 'running' AND start_time < now() - interval '24 hours' "
            "ORDER BY start_time"
        ).fetchall()
        for mv in MATERIALIZED_VIEWS:
            conn.execute(f"REFRESH MATERIALIZED VIEW CONCURRENTLY {mv}")
    retention = log_retention(settings, settings.log_retention_days)
    return {
        "vacuum_analyze": "done",
        "unused_indexes_over_10mb": unused,
        "tables_over_1000_dead_tuples": dead,
        "runs_running_over_24h": stale,
        "log_retention": retention,
        "materialized_views_refreshed": list(MATERIALIZED_VIEWS),
        "seconds": round(time.monotonic() - t0, 2),
    }
