"""Runbook §3.2.1 (weekly maintenance) and §3.2.2 (weekly performance report).

Fixed defects: the catalog queries read `relname`/`indexrelname` (the runbook's
`tablename`/`indexname` do not exist in the statistics views); a concurrent refresh needs a
unique index on each materialized view, checked read-only here and exercised in sandbox; the
report holds figures, not the text of the commands that should have produced them.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from opsdrill.probes.host_figures import cpu_percent, disk_usage, memory_usage
from opsdrill.report.perf_report import PerformanceReport, write
from opsdrill.runbook import queries
from opsdrill.runbook.thresholds import evaluate
from opsdrill.runbook.vacuum_stats import not_moved, stamps
from opsdrill.targets.base import Target

pytestmark = pytest.mark.readonly  # the few that write are marked sandbox, which wins

MATERIALIZED_VIEWS = ("mv_experiment_summary", "mv_model_performance")
RETENTION_DAYS = 90
#: weekly retention: rows may be up to a week past the limit between two runs
RETENTION_GRACE_DAYS = 7


@pytest.mark.runbook("3.2.1")
def test_no_large_index_goes_unused(read) -> None:
    unused = read(queries.UNUSED_LARGE_INDEXES)
    assert not unused, (
        f"{len(unused)} index(es) over 10 MB never scanned since the statistics were reset "
        "(expected none): "
        + ", ".join(f"{r['index_name']} on {r['table_name']} ({r['size_bytes'] / 2**20:.1f} "
                    "MiB)" for r in unused)
        + "; fix: if no query needs it, DROP INDEX CONCURRENTLY it (runbook 3.2.1); if one "
        "does, find why the planner avoids it (runbook 6.1.1)"
    )  # fmt: skip


@pytest.mark.runbook("3.2.1")
def test_dead_tuple_ratio_below_threshold(read) -> None:
    bad = [
        evaluate("dead_ratio", 100 * r["dead_ratio"], f"table {r['table_name']} "
                 f"({r['dead']} dead, {r['live']} live)").message
        for r in read(queries.DEAD_TUPLES)
        if evaluate("dead_ratio", 100 * r["dead_ratio"]).level.fails
    ]  # fmt: skip
    assert not bad, "; ".join(bad)


@pytest.mark.runbook("3.2.1")
def test_no_run_running_for_more_than_24h(read) -> None:
    stuck = [r for r in read(queries.RUNNING_RUNS) if r["duration_seconds"] > 86400]
    assert not stuck, (
        f"{len(stuck)} run(s) running for more than 24 h (expected none): "
        + ", ".join(f"run {r['run_id']} for {r['duration_seconds'] / 3600:.1f} h" for r in stuck)
        + "; fix: check their workers and cancel the stuck ones (runbook 3.1.3)"
    )


@pytest.mark.runbook("3.2.1")
def test_log_retention_keeps_nothing_older_than_90_days(read) -> None:
    row = read(queries.LOGS_OLDER_THAN, (RETENTION_DAYS + RETENTION_GRACE_DAYS,))[0]
    assert row["n"] == 0, (
        f"{row['n']} system_logs row(s) older than {RETENTION_DAYS + RETENTION_GRACE_DAYS} "
        f"days (oldest {row['oldest']}), expected none; fix: the weekly log retention is not "
        "running: `python -m nf_auto_runner.ops log-retention --days 90`"
    )


@pytest.mark.runbook("3.2.1")
def test_materialized_views_have_a_unique_index(read) -> None:
    found = {r["view_name"]: r["unique_indexes"] for r in read(queries.MV_UNIQUE_INDEXES)}
    missing = [mv for mv in MATERIALIZED_VIEWS if mv not in found]
    assert not missing, f"materialized view(s) missing: {', '.join(missing)}; fix: migrate"
    without = [mv for mv in MATERIALIZED_VIEWS if not found[mv]]
    assert not without, (
        f"materialized view(s) {', '.join(without)} have no unique index (expected one each), "
        "so REFRESH MATERIALIZED VIEW CONCURRENTLY fails; fix: recreate it, e.g. "
        "CREATE UNIQUE INDEX ux_mv_model_performance ON mv_model_performance "
        "(model_name, series_id)"
    )


@pytest.mark.sandbox
@pytest.mark.runbook("3.2.1")
def test_weekly_maintenance_runs_and_refreshes_concurrently(ops, read) -> None:
    """Its VACUUM ANALYZE is judged by pg_stat_user_tables, not by its own "done"."""
    before = stamps(read)
    done = ops("weekly-maintenance")
    assert done.returncode == 0, (
        f"weekly-maintenance exited {done.returncode} (expected 0): {done.stderr.strip()}; "
        "fix: a concurrent refresh needs a unique index on each materialized view"
    )
    result = json.loads(done.stdout)
    assert result["materialized_views_refreshed"] == list(MATERIALIZED_VIEWS), result
    assert result["log_retention"]["days"] == RETENTION_DAYS, result["log_retention"]
    stuck = not_moved(read, before, sorted(before), analyze=True)
    assert not stuck, (
        f"weekly-maintenance reported VACUUM ANALYZE {result['vacuum_analyze']!r} but "
        f"pg_stat_user_tables shows {len(stuck)} table(s) not vacuumed and analysed: "
        f"{'; '.join(stuck)}; fix: VACUUM skips tables the role does not own (a WARNING, "
        "exit 0): run it as the tables' owner"
    )


@pytest.mark.sandbox
@pytest.mark.exclusive  # its planted 100-day-old row would fail the retention check beside it
@pytest.mark.runbook("3.2.1")
def test_log_retention_deletes_only_rows_past_the_limit(ops, db) -> None:
    marker = "opsdrill retention probe"
    db.execute(
        "INSERT INTO system_logs (created_at, log_level, log_message) VALUES "
        "(now() - interval '100 days', 'INFO', %s), (now() - interval '80 days', 'INFO', %s)",
        (f"{marker} old", f"{marker} kept"),
    )
    try:
        done = ops("log-retention", "--days", str(RETENTION_DAYS))
        assert done.returncode == 0, f"log-retention failed: {done.stderr.strip()}"
        left = {
            r[0]
            for r in db.execute(
                "SELECT log_message FROM system_logs WHERE log_message LIKE %s", (marker + "%",)
            )
        }
        assert left == {f"{marker} kept"}, (
            f"after log-retention --days 90 the probe rows left are {sorted(left)}, expected "
            "only the 80-day-old one; fix: the retention's cutoff"
        )  # fmt: skip
    finally:
        db.execute("DELETE FROM system_logs WHERE log_message LIKE %s", (marker + "%",))


#: the database's own figures for the report, by SQL written apart from the report's queries
DB_FIGURES = {
    "runs": "SELECT status AS k, count(*) AS n, avg(execution_duration_seconds) AS mean "
    "FROM runs WHERE created_at > now() - interval '7 days' GROUP BY status",
    "models": "SELECT m.model_name AS k, count(*) AS n, avg(m.training_duration_seconds) AS mean "
    "FROM runs r JOIN models m ON m.run_id = r.run_id "
    "WHERE r.created_at > now() - interval '7 days' GROUP BY m.model_name",
    "errors": "SELECT log_level AS k, count(*) AS n, NULL::numeric AS mean FROM system_logs "
    "WHERE log_level IN ('ERROR', 'CRITICAL') AND created_at > now() - interval '7 days' "
    "GROUP BY log_level",
}
Figures = dict[str, dict[str, tuple[int, float | None]]]


def _db_figures(read) -> Figures:
    return {
        name: {r["k"]: (r["n"], None if r["mean"] is None else float(r["mean"]))
               for r in read(sql)}
        for name, sql in DB_FIGURES.items()
    }  # fmt: skip


def _report_figures(saved: dict[str, Any]) -> Figures:
    return {
        "runs": {x["status"]: (x["runs"], x["mean_seconds"]) for x in saved["runs_by_status"]},
        "models": {x["model_name"]: (x["models"], x["mean_training_seconds"])
                   for x in saved["training_by_model"]},
        "errors": {k: (n, None) for k, n in saved["error_counts"].items()},
    }  # fmt: skip


def _differences(report: Figures, db: Figures) -> list[str]:
    out = []
    for section, rows in db.items():
        for key in sorted(set(rows) | set(report[section])):
            got, want = report[section].get(key), rows.get(key)
            same = (
                got is not None
                and want is not None
                and got[0] == want[0]
                and (want[1] is None or (got[1] is not None and abs(got[1] - want[1]) < 0.01))
            )
            if not same:
                out.append(f"{section} {key}: report {got}, database {want}")
    return out  # fmt: skip


def _build_report(target: Target, host: object, read, disk_paths: list[str]) -> PerformanceReport:
    mem = memory_usage(host)
    statements, missing = [], {}
    if read("SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements'"):
        statements = read(queries.SLOWEST_STATEMENTS)
    else:
        missing["slowest_statements"] = "pg_stat_statements is not installed in the database"
    return PerformanceReport(
        generated_at=PerformanceReport.now(),
        target=target.name,
        cpu_percent=cpu_percent(host, 0.2),
        memory_percent=mem.percent,
        memory_total_bytes=mem.total_bytes,
        disks=[{**vars(d), "percent": d.percent} for d in disk_usage(host, disk_paths)],
        database_size_bytes=read(queries.DATABASE_SIZE)[0]["bytes"],
        runs_by_status=read(queries.RUNS_BY_STATUS_7D),
        training_by_model=read(queries.TRAINING_BY_MODEL_7D),
        error_counts={r["log_level"]: r["n"] for r in read(queries.LEVEL_COUNTS_7D)},
        slowest_statements=statements,
        missing=missing,
    )


@pytest.mark.runbook("3.2.2")
def test_weekly_performance_report_holds_real_figures(
    target: Target, host: object, read, disk_paths: list[str], reports_dir
) -> None:
    """The written report is read back and its figures compared with the database's own,
    counted by separate SQL; the database is read before and after, so a run created
    meanwhile cannot blur the comparison (the report is rebuilt until both agree)."""
    for _ in range(3):
        before = _db_figures(read)
        report = _build_report(target, host, read, disk_paths)
        after = _db_figures(read)
        if before == after:
            break
    md_path, json_path = write(report, reports_dir)
    saved = json.loads(json_path.read_text())
    wrong = _differences(_report_figures(saved), after)
    assert not wrong, (
        f"the weekly report {json_path.name} disagrees with the database: {'; '.join(wrong)}; "
        "fix: the report's queries (opsdrill.runbook.queries, runbook 3.2.2)"
    )
    size = read(queries.DATABASE_SIZE)[0]["bytes"]
    assert abs(saved["database_size_bytes"] - size) <= 0.1 * size, (
        f"the report says the database is {saved['database_size_bytes']} bytes, it is {size}"
    )
    assert 0 <= saved["cpu_percent"] <= 100 and saved["memory_total_bytes"] > 0, saved
    text = md_path.read_text()
    assert "$(" not in text and "`" not in text.split("## Database")[0], (
        f"{md_path} holds command text instead of figures"
    )
    rows = [f"| {x['status']} | {x['runs']:,} |" for x in saved["runs_by_status"]]
    absent = [r for r in rows if r not in text]
    absent += [] if f"{saved['database_size_bytes'] / 2**20:.1f} MiB" in text else ["size"]
    assert not absent, f"{md_path} lacks the figures of its own JSON: {absent}"
