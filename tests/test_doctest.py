"""opsdrill doctest: extraction and classification (pure), validation against a real cluster."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from opsdrill.cli import main
from opsdrill.doctest import Database, database_for_target, doctest, extract
from opsdrill.doctest.classify import Kind, classify
from opsdrill.doctest.hints import ROUND_DOUBLE

ROOT = Path(__file__).resolve().parent.parent
RUNBOOK = ROOT / "docs" / "RUNBOOK.md"


# -- extraction --------------------------------------------------------------------------------
def sqls(markdown: str) -> list[str]:
    return [s.sql for s in extract(markdown)]


def test_sql_fence_split_respects_quotes_dollar_quotes_and_comments() -> None:
    md = (
        "```sql\n-- a comment; not a split\nSELECT 'a;b', $$x;y$$, $t$;$t$;\n"
        "SELECT E'it\\'s;'; /* c; */ SELECT \"odd;name\" FROM runs\n```\n"
    )
    assert sqls(md) == [
        "-- a comment; not a split\nSELECT 'a;b', $$x;y$$, $t$;$t$;",
        "SELECT E'it\\'s;';",
        '/* c; */ SELECT "odd;name" FROM runs',
    ]


def test_sections_procedures_and_lines() -> None:
    md = "# 3. Routine\n\n## 3.2.1 Weekly maintenance\n\n```sql\n\nSELECT 1;\n```\n"
    (stmt,) = extract(md)
    assert (stmt.procedure, stmt.line, stmt.source) == ("3.2.1", 7, "sql fence")
    assert stmt.section == "3. Routine > 3.2.1 Weekly maintenance"


def test_psql_c_with_both_quote_styles_and_shell_variables() -> None:
    md = (
        "```bash\nDAYS=30\n"
        'psql "$DATABASE_URL" -At -c "SELECT count(*) FROM runs WHERE created_at > now() - '
        "interval '$DAYS days'\" | cat\n"
        "psql -c 'SELECT 1; SELECT 2' && psql --command=\"SELECT :x\"\n"
        "N=$(psql -At -c \"SELECT '$UNSET'\")\n```\n"
    )
    stmts = extract(md)
    assert [s.sql for s in stmts] == [
        "SELECT count(*) FROM runs WHERE created_at > now() - interval '30 days'",
        "SELECT 1;",
        "SELECT 2",
        "SELECT :x",  # psql does not interpolate variables in -c
        "SELECT '0'",
    ]
    assert {s.source for s in stmts} == {"psql -c"}


def test_here_documents_quoted_and_unquoted_with_psql_variables() -> None:
    md = (
        "```sh\npsql -v ON_ERROR_STOP=1 -v age=7 <<'SQL'\n\\set lim 5\n"
        "SELECT :'age', $$ok$$ LIMIT :lim;\nSELECT :'unset';\nSQL\n"
        "psql <<-EOF\n\tSELECT '$HOME', $$;\n\tEOF\n```\n"
    )
    stmts = extract(md)
    assert [s.sql for s in stmts] == [
        "SELECT '7', $$ok$$ LIMIT 5;",
        "SELECT NULL;",
        "SELECT '0', 12345;",  # the shell expands $$ in an unquoted here-document
    ]
    assert stmts[1].notes and stmts[0].source == "psql here-doc"
    assert stmts[0].line == 4


def test_copy_meta_command_contributes_its_query_and_skip_marker() -> None:
    md = (
        "```sql\n\\copy (SELECT run_id FROM runs WHERE status = 'failed') TO 'x.csv' CSV\n"
        "\\x\nSELECT 1 \\gx\n```\n<!-- doctest: skip -->\n```sql\nSELEC broken;\n```\n"
    )
    stmts = extract(md)
    assert [(s.sql, s.source) for s in stmts] == [
        ("SELECT run_id FROM runs WHERE status = 'failed'", "psql \\copy"),
        ("SELECT 1", "sql fence"),
    ]


# -- classification ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("sql", "kind"),
    [
        ("SELECT relname FROM pg_stat_user_tables", Kind.READ),
        ("WITH x AS (SELECT 1) SELECT * FROM x", Kind.READ),
        ("WITH d AS (DELETE FROM runs RETURNING 1) SELECT count(*) FROM d", Kind.WRITE),
        ("SELECT * FROM runs FOR UPDATE", Kind.WRITE),
        ("SELECT 'DELETE FROM runs'", Kind.READ),
        ("EXPLAIN SELECT 1", Kind.READ),
        ("EXPLAIN (ANALYZE, BUFFERS) DELETE FROM runs", Kind.WRITE),
        ("DELETE FROM system_logs", Kind.WRITE),
        ("REFRESH MATERIALIZED VIEW CONCURRENTLY mv", Kind.WRITE),  # allowed in a transaction
        ("vacuum analyze", Kind.NONTXN),
        ("CREATE UNIQUE INDEX CONCURRENTLY i ON runs (run_id)", Kind.NONTXN),
        ("DROP INDEX CONCURRENTLY i", Kind.NONTXN),
        ("REINDEX INDEX CONCURRENTLY idx_runs_status", Kind.NONTXN),
        ("-- c\nREINDEX DATABASE ts_forecast_system", Kind.NONTXN),
        ("DROP DATABASE ts_forecast_system", Kind.CLUSTER),
        ("ALTER SYSTEM SET work_mem = '64MB'", Kind.CLUSTER),
        ("SELECT pg_terminate_backend(pid) FROM pg_stat_activity", Kind.SIDE_EFFECT),
        ("SELECT nextval('runs_run_id_seq')", Kind.SIDE_EFFECT),
        ("COPY runs TO PROGRAM 'gzip > /tmp/x'", Kind.SIDE_EFFECT),
        ("BEGIN", Kind.TXN_CONTROL),
        ("COMMIT;", Kind.TXN_CONTROL),
    ],
)
def test_classify(sql: str, kind: Kind) -> None:
    assert classify(sql).kind is kind


# -- against a real cluster --------------------------------------------------------------------
@pytest.fixture(scope="session")
def db_target() -> Iterator[object]:
    """Only the stack's database, with the app's schema: the doctest needs nothing else."""
    from opsdrill.targets.local import LocalTarget

    keep = os.environ.get("OPSDRILL_TEST_STATE_DIR")
    if keep:
        state = Path(keep)
    else:
        parent = Path(tempfile.mkdtemp(prefix="opsdrill-doctest-", dir="/var/tmp"))
        parent.chmod(0o755)
        state = parent / "state"
    target = LocalTarget(state, monitoring=False)
    target.cluster.init()
    target.service("db").start()
    target._bootstrap_db()
    _apply_schema(target)
    try:
        yield target
    finally:
        if not keep:
            target.destroy()


def _apply_schema(target: object) -> None:
    import psycopg

    with psycopg.connect(target.endpoints.dsn, autocommit=True) as conn:  # type: ignore[attr-defined]
        for path in sorted((ROOT / "system" / "nf_auto_runner" / "sql").glob("*.sql")):
            conn.execute(path.read_text())  # type: ignore[arg-type]


def admin(target: object, sql: str) -> list[tuple]:
    import psycopg

    dsn = target.endpoints.admin_dsn  # type: ignore[attr-defined]
    with psycopg.connect(dsn, autocommit=True) as conn:
        cur = conn.execute(sql)  # type: ignore[arg-type]
        return cur.fetchall() if cur.description else []


def spec(target: object) -> str:
    return f"local:{target.state_dir}"  # type: ignore[attr-defined]


def test_project_runbook_has_no_broken_statement(db_target, capsys, tmp_path) -> None:
    out = tmp_path / "doctest.json"
    code = main(["doctest", str(RUNBOOK), "--target", spec(db_target), "--json", str(out)])
    report = json.loads(out.read_text())
    assert code == 0, capsys.readouterr().out
    assert report["counts"]["broken"] == 0 and len(report["statements"]) >= 50
    assert not admin(db_target, "SELECT datname FROM pg_database WHERE datname LIKE 'opsdrill%'")


BROKEN_RUNBOOK = """# Runbook
## 3.2.1 Weekly maintenance
```sql
SELECT schemaname, tablename, indexname, idx_scan FROM pg_stat_user_indexes WHERE idx_scan = 0;
SELECT count(*) FROM runz;
REFRESH MATERIALIZED VIEW CONCURRENTLY mv_no_unique_index;
SELECT relname FROM pg_stat_user_tables;
```
"""


def test_broken_statements_reported_with_section_error_hint_and_exit_1(
    db_target, tmp_path, capsys
) -> None:
    admin(db_target, "CREATE MATERIALIZED VIEW IF NOT EXISTS mv_no_unique_index AS SELECT 1 AS x")
    admin(db_target, "ALTER MATERIALIZED VIEW mv_no_unique_index OWNER TO nf_app")
    runbook = tmp_path / "broken.md"
    runbook.write_text(BROKEN_RUNBOOK)
    out = tmp_path / "r.json"
    try:
        code = main(["doctest", str(runbook), "--target", spec(db_target), "--json", str(out)])
    finally:
        admin(db_target, "DROP MATERIALIZED VIEW mv_no_unique_index")
    text = capsys.readouterr().out
    assert code == 1
    broken = [s for s in json.loads(out.read_text())["statements"] if s["verdict"] == "broken"]
    assert [s["line"] for s in broken] == [4, 5, 6]
    assert all(s["procedure"] == "3.2.1" for s in broken)
    assert "relname/indexrelname" in broken[0]["hint"]
    assert 'relation "runz" does not exist' in broken[1]["error"]
    assert "runs" in broken[1]["hint"]
    assert "unique index" in broken[2]["hint"].lower()
    assert "Runbook > 3.2.1 Weekly maintenance" in text and "BROKEN" in text


def test_delete_leaves_the_table_unchanged(db_target, tmp_path) -> None:
    admin(
        db_target,
        "INSERT INTO system_logs (created_at, log_level, log_message)"
        " SELECT now() - interval '200 days', 'INFO', 'old' FROM generate_series(1, 5)",
    )
    before = admin(db_target, "SELECT count(*) FROM system_logs")
    runbook = tmp_path / "rb.md"
    runbook.write_text("```sql\nDELETE FROM system_logs WHERE created_at < now() - interval "
                       "'90 days';\nSELECT count(*) FROM system_logs;\n```\n")  # fmt: skip
    report = doctest(runbook, database_for_target(db_target))
    assert [r.verdict for r in report.results] == ["ok", "ok"]
    assert report.results[0].method.startswith("run in a transaction")
    assert admin(db_target, "SELECT count(*) FROM system_logs") == before


def test_vacuum_runs_on_a_scratch_clone_not_the_real_database(db_target, tmp_path) -> None:
    query = "SELECT vacuum_count FROM pg_stat_user_tables WHERE relname = 'metrics'"
    before = admin(db_target, query)
    runbook = tmp_path / "rb.md"
    runbook.write_text("```sql\nVACUUM metrics;\nVACUUM no_such_table;\n```\n")
    report = doctest(runbook, database_for_target(db_target))
    assert [r.verdict for r in report.results] == ["ok", "broken"]
    assert "scratch clone" in report.results[0].method
    assert admin(db_target, query) == before
    assert not admin(db_target, "SELECT datname FROM pg_database WHERE datname LIKE 'opsdrill%'")


def test_production_never_executes_a_write(db_target, tmp_path) -> None:
    """A rollback hides a DELETE, but not a consumed sequence value: prove nothing ran."""
    seq = "SELECT last_value, is_called FROM system_logs_log_id_seq"
    before = admin(db_target, seq)
    runbook = tmp_path / "rb.md"
    runbook.write_text(
        "```sql\nINSERT INTO system_logs (log_level, log_message) VALUES ('INFO', 'x');\n"
        "SELECT count(*) FROM system_logs;\nVACUUM system_logs;\nTRUNCATE system_logs;\n"
        "SELECT nextval('system_logs_log_id_seq');\nSELECT * FROM no_such_table;\n```\n"
    )
    db = Database(db_target.endpoints.dsn, production=True, label="prod")
    results = doctest(runbook, db).results
    assert [r.verdict for r in results] == ["ok", "ok", "skipped", "skipped", "ok", "broken"]
    assert results[0].method.startswith("prepared")
    assert admin(db_target, seq) == before


def test_dsn_is_production_unless_sandbox(db_target, tmp_path, capsys) -> None:
    runbook = tmp_path / "rb.md"
    runbook.write_text("```sql\nUPDATE runs SET status = 'failed' WHERE false;\n```\n")
    out = tmp_path / "r.json"
    dsn = db_target.endpoints.dsn
    assert main(["doctest", str(runbook), "--dsn", dsn, "--json", str(out)]) == 0
    assert json.loads(out.read_text())["statements"][0]["method"].startswith("prepared")
    assert main(["doctest", str(runbook), "--dsn", dsn, "--sandbox", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["statements"][0]["method"].startswith("run in")
    assert dsn.split("@")[0] not in capsys.readouterr().out  # no credentials in the output


def test_usage_errors_exit_2(capsys, tmp_path) -> None:
    assert main(["doctest", str(tmp_path / "missing.md"), "--target", "local"]) == 2
    assert main(["doctest", str(RUNBOOK), "--target", "nowhere"]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "unknown target" in err


# -- the runbook's own SQL is the contract -----------------------------------------------------
ORIGINAL_ROUNDING = """# Runbook
## 3.3.1 Monthly capacity review
```sql
SELECT ROUND(AVG(execution_duration_seconds), 2) FROM runs;
SELECT ROUND(AVG(training_duration_seconds), 2) FROM models;
SELECT ROUND(AVG(value), 2) FROM metrics;
```
"""


def test_original_rounding_runs_unchanged_and_double_precision_gets_the_schema_hint(
    db_target, tmp_path
) -> None:
    """The durations are numeric, so the runbook's ROUND(AVG(col), 2) runs as written; on a
    double precision column (metrics.value here) the hint says to fix the schema, not the SQL."""
    runbook = tmp_path / "rounding.md"
    runbook.write_text(ORIGINAL_ROUNDING)
    results = doctest(runbook, database_for_target(db_target)).results
    assert [r.verdict for r in results] == ["ok", "ok", "broken"], [r.error for r in results]
    assert "round(double precision, integer)" in (results[2].error or "")
    assert results[2].hint == ROUND_DOUBLE


def test_migration_makes_old_double_precision_durations_numeric(db_target) -> None:
    """A database migrated up to 002 (durations double precision, views over them) is
    upgraded in place: values kept, views rebuilt with their unique indexes, runbook SQL runs."""
    import psycopg
    from nf_auto_runner.migrate import migrate, migration_files
    from psycopg.conninfo import make_conninfo

    name = "opsdrill_migrate_old_types"
    admin(db_target, f"DROP DATABASE IF EXISTS {name}")
    admin(db_target, f"CREATE DATABASE {name} OWNER nf_app")
    dsn = make_conninfo(db_target.endpoints.dsn, dbname=name)  # type: ignore[attr-defined]
    old = [(n, sql) for n, sql in migration_files() if n < "003"]
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CREATE TABLE schema_migrations (name TEXT PRIMARY KEY, "
                         "applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")  # fmt: skip
            for n, sql in old:
                conn.execute(sql)  # type: ignore[arg-type]
                conn.execute("INSERT INTO schema_migrations (name) VALUES (%s)", (n,))
            run_id = conn.execute(
                "INSERT INTO runs (run_name, experiment_id, status, model_name, series_id, "
                "horizon, execution_duration_seconds) SELECT 'old', experiment_id, "
                "'completed', 'MLP', 'airpassengers', 12, 12.3456789 FROM experiments "
                "LIMIT 1 RETURNING run_id"
            ).fetchone()[0]
            conn.execute("INSERT INTO models (run_id, model_name, series_id, horizon, path, "
                         "training_duration_seconds) VALUES (%s, 'MLP', 'airpassengers', 12, "
                         "'/x', 7.25)", (run_id,))  # fmt: skip
            conn.execute("REFRESH MATERIALIZED VIEW mv_model_performance")
            assert _types(conn) == {"double precision"}, "the old schema is not the old one"
        applied = migrate(dsn)
        assert "003_numeric_durations.sql" in applied, applied
        with psycopg.connect(dsn, autocommit=True) as conn:
            assert _types(conn) == {"numeric"}
            assert conn.execute(
                "SELECT ROUND(AVG(execution_duration_seconds), 2), "
                "(SELECT ROUND(AVG(training_duration_seconds), 2) FROM models) FROM runs"
            ).fetchone() == (Decimal("12.35"), Decimal("7.25"))
            for view in ("mv_experiment_summary", "mv_model_performance"):
                conn.execute(f"REFRESH MATERIALIZED VIEW CONCURRENTLY {view}")
            avg = conn.execute("SELECT avg_training_seconds FROM mv_model_performance").fetchone()
            assert avg == (Decimal("7.25"),)
        assert migrate(dsn) == [], "a second migrate applied something again"
    finally:
        admin(db_target, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _types(conn: object) -> set[str]:
    rows = conn.execute(  # type: ignore[attr-defined]
        "SELECT data_type FROM information_schema.columns WHERE (table_name, column_name) IN "
        "(('runs', 'execution_duration_seconds'), ('models', 'training_duration_seconds'))"
    ).fetchall()
    assert len(rows) == 2, rows
    return {r[0] for r in rows}
