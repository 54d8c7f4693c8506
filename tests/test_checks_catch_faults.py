"""The checks catch faults: a healthy embedded stack passes them all; broken one way at a time,
exactly the matching checks fail, with a message naming the problem; repaired, all pass again.

Each run is `pytest checks` in a subprocess against the session's own stack, read through its
JUnit XML. Notes on honesty:
- The CPU row of §4.1.2 is raised for these runs (`OPSDRILL_THRESHOLDS`): on a shared CI
  machine the CPU is everyone's, not the stack's; it is the one figure no fault here touches.
- Only this change's check modules and the smoke checks run (minus the 40-second training
  smoke), so another module's own state cannot blur the "exactly" in the assertion.
- The disk fault is a real 8 MiB tmpfs filled to ~91 %, added to the disk check through
  `OPSDRILL_DISK_PATHS`; the real disk is never filled.
- A failing /health runs through a target file describing the same stack: the plugin's local
  target would try to restart an unhealthy API for two minutes instead of reporting it.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
MODULES = [
    "checks/test_daily.py", "checks/test_errors_and_runs.py", "checks/test_weekly.py",
    "checks/test_monthly.py", "checks/test_thresholds.py", "checks/test_alert_rule_files.py",
    "checks/test_indexes_and_pool.py", "checks/test_maintenance.py", "checks/test_smoke.py",
    "checks/test_security.py", "checks/test_parallel_runs.py",
]  # fmt: skip
SLOW_SMOKE = "checks/test_smoke.py::test_training_run_completes_and_serves"
ENV = {"OPSDRILL_THRESHOLDS": '{"cpu": [100, 100]}'}

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for mount (tmpfs, bind ro)"),
]


def run_checks(spec: str, tmp: Path, *extra: str, env: dict[str, str] | None = None,
               modules: list[str] = MODULES) -> dict[str, tuple[str, str]]:  # fmt: skip
    """test id -> (outcome, message) of one `pytest checks` run."""
    junit = tmp / f"junit-{time.monotonic_ns()}.xml"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", *modules, "--target", spec, "--deselect", SLOW_SMOKE,
         "-p", "no:cacheprovider", "-q", f"--junitxml={junit}", *extra],
        cwd=REPO, env={**os.environ, **ENV, **(env or {})}, capture_output=True, text=True,
        timeout=600, check=False,
    )  # fmt: skip
    assert junit.exists(), done.stdout[-3000:] + done.stderr[-2000:]
    results = {}
    for case in ET.parse(junit).iter("testcase"):
        key = f"{case.get('classname', '').rsplit('.', 1)[-1]}::{case.get('name')}"
        bad = case.find("failure") if case.find("failure") is not None else case.find("error")
        skipped = case.find("skipped") is not None
        outcome = "failed" if bad is not None else "skipped" if skipped else "passed"
        results[key] = (outcome, (bad.get("message") or "") if bad is not None else "")
    return results


def failed(results: dict[str, tuple[str, str]]) -> dict[str, str]:
    return {k: msg for k, (outcome, msg) in results.items() if outcome == "failed"}


@pytest.fixture(scope="module")
def healthy(stack: Any) -> Any:
    """The session stack with a first backup (`opsdrill up` takes none yet)."""
    done = stack.ops("backup")
    assert done.ok, done.output()
    return stack


@pytest.fixture
def spec(healthy: Any) -> str:
    return f"local:{healthy.state_dir}"


def test_healthy_stack_passes_every_check_also_in_parallel(spec: str, tmp_path: Path) -> None:
    for extra in ((), ("-n", "2")):
        results = run_checks(spec, tmp_path, *extra)
        assert len(results) > 40, f"only {len(results)} checks ran"
        assert not failed(results), f"healthy stack, {extra}: {failed(results)}"


# -- faults: each a context manager that breaks the stack and repairs it ---------------------
@contextlib.contextmanager
def stale_backup(t: Any) -> Iterator[dict[str, str]]:
    """Every backup 25 h old: the newest by real mtime is then stale too."""
    before = {p: p.stat() for p in (t.home / "backups").glob("full_*.dump.gz")}
    for p, st in before.items():
        os.utime(p, (st.st_atime, st.st_mtime - 25 * 3600))
    try:
        yield {}
    finally:
        for p, st in before.items():
            os.utime(p, (st.st_atime, st.st_mtime))


def _sql(t: Any, *statements: str) -> None:
    with psycopg.connect(t.endpoints.dsn, autocommit=True) as conn:
        for s in statements:
            conn.execute(s)  # type: ignore[arg-type]


@contextlib.contextmanager
def dropped_index(t: Any) -> Iterator[dict[str, str]]:
    _sql(t, "DROP INDEX idx_runs_status_start_time")
    try:
        yield {}
    finally:
        _sql(t, "CREATE INDEX IF NOT EXISTS idx_runs_status_start_time "
                "ON runs (status, start_time DESC)")  # fmt: skip


@contextlib.contextmanager
def mv_without_unique_index(t: Any) -> Iterator[dict[str, str]]:
    _sql(t, "DROP INDEX ux_mv_model_performance")
    try:
        yield {}
    finally:
        _sql(t, "CREATE UNIQUE INDEX IF NOT EXISTS ux_mv_model_performance "
                "ON mv_model_performance (model_name, series_id)")  # fmt: skip


@contextlib.contextmanager
def error_spike(t: Any) -> Iterator[dict[str, str]]:
    _sql(t, "INSERT INTO system_logs (log_level, log_message, exception_type) "
            "SELECT 'ERROR', 'opsdrill spike: connection refused ' || g, 'OperationalError' "
            "FROM generate_series(1, 120) g")  # fmt: skip
    try:
        yield {}
    finally:
        _sql(t, "DELETE FROM system_logs WHERE log_message LIKE 'opsdrill spike:%'")


@contextlib.contextmanager
def alert_rule_typo(t: Any) -> Iterator[dict[str, str]]:
    rules = t.state_dir / "monitoring" / "prometheus" / "rules" / "alerts.yml"
    original = rules.read_text()
    assert "http_requests_total" in original
    rules.write_text(original.replace("http_requests_total", "http_request_total"))
    try:
        yield {}
    finally:
        rules.write_text(original)


@contextlib.contextmanager
def disk_above_threshold(t: Any) -> Iterator[dict[str, str]]:
    mnt = t.state_dir / "disk-fault"
    mnt.mkdir(exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mnt)], check=True)
    try:
        (mnt / "fill").write_bytes(b"\0" * int(7.3 * 2**20))
        yield {"OPSDRILL_DISK_PATHS": str(mnt)}
    finally:
        subprocess.run(["umount", str(mnt)], check=True)
        mnt.rmdir()


@contextlib.contextmanager
def failing_health(t: Any) -> Iterator[dict[str, str]]:
    logs = str(t.home / "logs" / "app")
    subprocess.run(["mount", "--bind", logs, logs], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", logs], check=True)
        yield {}
    finally:
        subprocess.run(["umount", logs], check=True)


def _admin_sql(t: Any, statement: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(t.endpoints.admin_dsn, autocommit=True) as conn:
        cur = conn.execute(statement)  # type: ignore[arg-type]
        return cur.fetchall() if cur.description else []


@contextlib.contextmanager
def table_not_owned_by_the_app(t: Any) -> Iterator[dict[str, str]]:
    """metrics and the database owned by the superuser, the app granted all it needs: the
    app's VACUUM then skips the table with a WARNING and still succeeds."""
    owner, db = _admin_sql(t, "SELECT tableowner, current_database() FROM pg_tables "
                              "WHERE tablename = 'metrics'")[0]  # fmt: skip
    _admin_sql(t, f"ALTER DATABASE {db} OWNER TO CURRENT_USER")
    _admin_sql(t, "ALTER TABLE metrics OWNER TO CURRENT_USER")
    _admin_sql(t, f"GRANT ALL ON metrics, metrics_metric_id_seq TO {owner}")
    try:
        yield {}
    finally:
        _admin_sql(t, f"ALTER TABLE metrics OWNER TO {owner}")
        _admin_sql(t, f"ALTER DATABASE {db} OWNER TO {owner}")


@contextlib.contextmanager
def report_in_wrong_units(t: Any) -> Iterator[dict[str, str]]:
    """The weekly report's run durations in minutes (tests/broken_weekly_report.py)."""
    yield {"PYTEST_ADDOPTS": "-p tests.broken_weekly_report"}


@contextlib.contextmanager
def lossy_archive(t: Any) -> Iterator[dict[str, str]]:
    """The ops CLI's archive writes metric values as 0 (tests/broken_archive/)."""
    path = [str(REPO / "tests" / "broken_archive"), os.environ.get("PYTHONPATH", "")]
    yield {"PYTHONPATH": os.pathsep.join(p for p in path if p)}


@contextlib.contextmanager
def unused_large_index(t: Any) -> Iterator[dict[str, str]]:
    """A 600 000-row table with a never-scanned index of about 13 MiB."""
    _sql(t, "CREATE TABLE opsdrill_unused_probe AS SELECT g::bigint AS x "
            "FROM generate_series(1, 600000) g",
            "CREATE INDEX opsdrill_unused_probe_x ON opsdrill_unused_probe (x)")  # fmt: skip
    try:
        yield {}
    finally:
        _sql(t, "DROP TABLE opsdrill_unused_probe")


@contextlib.contextmanager
def slow_completed_run(t: Any) -> Iterator[dict[str, str]]:
    """A run that completed an hour ago after three hours of training."""
    _sql(t, "INSERT INTO runs (run_name, experiment_id, status, model_name, series_id, horizon, "
            "created_at, start_time, end_time, execution_duration_seconds) SELECT "
            "'opsdrill-slow-probe', experiment_id, 'completed', 'MLP', 'airpassengers', 12, "
            "now() - interval '4 hours', now() - interval '4 hours', now() - interval '1 hour', "
            "10800 FROM experiments WHERE experiment_name = 'default'")  # fmt: skip
    try:
        yield {}
    finally:
        _sql(t, "DELETE FROM runs WHERE run_name = 'opsdrill-slow-probe'")


@contextlib.contextmanager
def training_longer_than_its_run(t: Any) -> Iterator[dict[str, str]]:
    """The newest model's recorded training time made 100 s longer than its whole run."""
    with psycopg.connect(t.endpoints.dsn, autocommit=True) as conn:
        model_id, seconds = conn.execute(
            "SELECT model_id, training_duration_seconds FROM models ORDER BY model_id DESC "
            "LIMIT 1").fetchone()  # fmt: skip
        conn.execute("UPDATE models m SET training_duration_seconds = "
                     "r.execution_duration_seconds + 100 FROM runs r "
                     "WHERE r.run_id = m.run_id AND m.model_id = %s", (model_id,))  # fmt: skip
    try:
        yield {}
    finally:
        with psycopg.connect(t.endpoints.dsn, autocommit=True) as conn:
            conn.execute("UPDATE models SET training_duration_seconds = %s WHERE model_id = %s",
                         (seconds, model_id))  # fmt: skip


@contextlib.contextmanager
def one_cpu_machine(t: Any) -> Iterator[dict[str, str]]:
    """The stack (MAX_PARALLEL_RUNS 2) judged as if its host had one CPU: the checks run
    pinned to one CPU, and `nproc` on the host reads that affinity mask. (Raising the
    setting instead means restarting the API, whose warm-up then blurs the latency rows.)"""
    before = os.sched_getaffinity(0)
    if len(before) < 2:
        pytest.skip("this machine has one CPU already: the stack's 2 parallel runs exceed it")
    os.sched_setaffinity(0, {min(before)})
    try:
        yield {}
    finally:
        os.sched_setaffinity(0, before)


@contextlib.contextmanager
def stray_file_in_a_model(t: Any) -> Iterator[dict[str, str]]:
    """A 1 MiB leftover in the newest model's directory, unknown to the database."""
    with psycopg.connect(t.endpoints.dsn) as conn:
        path = Path(conn.execute("SELECT path FROM models ORDER BY model_id DESC LIMIT 1"
                                 ).fetchone()[0])  # fmt: skip
    stray = path / "opsdrill-stray-checkpoint.bin"
    stray.write_bytes(b"\0" * 2**20)
    try:
        yield {}
    finally:
        stray.unlink()


def _file_target(t: Any, tmp: Path) -> tuple[str, dict[str, str]]:
    ep = t.endpoints
    path = tmp / "embedded.yaml"
    path.write_text(yaml.safe_dump({
        "name": "embedded-as-file", "production": False, "host": "local://",
        "endpoints": {"api_url": ep.api_url, "dsn_env": "CATCH_DSN", "api_key_env": "CATCH_KEY",
                      "prometheus_url": ep.prometheus_url, "home": str(ep.home),
                      "models_dir": str(ep.models_dir), "logs_dir": str(ep.logs_dir),
                      "backups_dir": str(ep.backups_dir)},
        "services": {"api": {"pidfile": str(t.home / "run" / "app.pid")}},
    }))  # fmt: skip
    return str(path), {"CATCH_DSN": ep.dsn, "CATCH_KEY": ep.api_key or ""}


FAULTS: dict[str, tuple[Callable[[Any], Any], dict[str, str]]] = {
    "stale backup": (stale_backup, {
        "test_daily::test_8_newest_backup_is_younger_than_24h": "h old"}),
    "dropped index": (dropped_index, {
        "test_indexes_and_pool::test_index_exists_and_is_valid[idx_runs_status_start_time]":
            "index idx_runs_status_start_time is missing"}),
    "MV without its unique index": (mv_without_unique_index, {
        "test_weekly::test_materialized_views_have_a_unique_index":
            "mv_model_performance have no unique index",
        "test_weekly::test_weekly_maintenance_runs_and_refreshes_concurrently":
            "concurrently"}),
    "failing API health": (failing_health, {
        "test_daily::test_4_api_health_is_ok": "storage",
        "test_smoke::test_health_reports_every_component_ok": "503"}),
    "disk above threshold": (disk_above_threshold, {
        "test_daily::test_2_disk_usage_below_thresholds": "WARNING: disk usage of"}),
    "alert rule with a typo": (alert_rule_typo, {
        "test_alert_rule_files::test_promtool_unit_tests_pass[alerts.yml]": "HighErrorRate"}),
    "VACUUM skipped on a table the app does not own": (table_not_owned_by_the_app, {
        "test_weekly::test_weekly_maintenance_runs_and_refreshes_concurrently": "metrics (last",
        "test_maintenance::test_reindex_concurrently_and_vacuum_analyze_take_effect":
            "metrics (last"}),
    "weekly report with wrong figures": (report_in_wrong_units, {
        "test_weekly::test_weekly_performance_report_holds_real_figures":
            "disagrees with the database: runs completed"}),
    "archive that loses values": (lossy_archive, {
        "test_monthly::test_archive_exports_exactly_what_it_deletes":
            "value(s) in the archive differ from the rows deleted"}),
    "a large index nothing uses": (unused_large_index, {
        "test_weekly::test_no_large_index_goes_unused": "opsdrill_unused_probe_x"}),
    "a completed run that took 3 hours": (slow_completed_run, {
        "test_errors_and_runs::test_slowest_completed_runs_within_the_long_running_limit":
            "opsdrill-slow-probe"}),
    "a training time longer than its run": (training_longer_than_its_run, {
        "test_errors_and_runs::test_training_times_fit_inside_their_runs":
            "impossible training time"}),
    "more parallel runs than CPUs": (one_cpu_machine, {
        "test_parallel_runs::test_max_parallel_runs_fits_cpus_gpus_and_memory":
            "fix: set MAX_PARALLEL_RUNS=1"}),
    "a stray file in a model directory": (stray_file_in_a_model, {
        "test_monthly::test_model_storage_matches_the_files": "recorded size differs"}),
    "error spike in system_logs": (error_spike, {
        "test_daily::test_6_error_rows_in_24h_below_threshold": "ERROR rows in system_logs",
        "test_errors_and_runs::test_error_rows_in_the_last_hour_below_threshold": "CRITICAL",
        "test_errors_and_runs::test_no_exception_type_dominates_the_errors":
            "OperationalError"}),
}  # fmt: skip


@pytest.mark.parametrize("fault", FAULTS)
def test_fault_fails_exactly_the_matching_checks(
    fault: str, healthy: Any, spec: str, tmp_path: Path
) -> None:
    inject, expected = FAULTS[fault]
    env: dict[str, str] = {}
    if fault == "failing API health":
        spec, env = _file_target(healthy, tmp_path)
    with inject(healthy) as fault_env:
        results = run_checks(spec, tmp_path, env={**env, **fault_env})
    got = failed(results)
    assert set(got) == set(expected), f"{fault}: expected {sorted(expected)} to fail, got {got}"
    for test_id, words in expected.items():
        assert words.lower() in got[test_id].lower(), f"{test_id}: {got[test_id]!r} lacks {words!r}"


# -- a deployment that lost its API-key guard -----------------------------------------------
UNGUARDED = "POST /runs/{run_id}/cancel"


@contextlib.contextmanager
def unguarded_app(t: Any, tmp: Path, *variant: str) -> Iterator[str]:
    """The real app with the key check stripped from one route (tests/unguarded_app.py),
    serving the session stack's database from its own home, executor off; its URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**t.app_env(), "NF_HOME": str(tmp / "unguarded-home")}
    log = open(tmp / "unguarded.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([sys.executable, "-m", "tests.unguarded_app", "--port", str(port),
                             *variant], cwd=REPO, env=env, stdout=log, stderr=log)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            assert proc.poll() is None, (tmp / "unguarded.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "the unguarded app never became healthy"
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def _security_check_against(t: Any, tmp: Path, *variant: str) -> dict[str, str]:
    with unguarded_app(t, tmp, *variant) as url:
        spec, env = _file_target(t, tmp)
        described = yaml.safe_load(Path(spec).read_text())
        described["endpoints"]["api_url"] = url
        Path(spec).write_text(yaml.safe_dump(described))
        return failed(run_checks(spec, tmp, env=env, modules=["checks/test_security.py"]))


SECURITY_CHECK = "test_security::test_mutating_endpoints_refuse_a_missing_or_wrong_key"


def test_security_check_names_the_endpoint_that_lost_its_key_check(
    healthy: Any, tmp_path: Path
) -> None:
    got = _security_check_against(healthy, tmp_path, UNGUARDED)
    assert set(got) == {SECURITY_CHECK}, f"expected only {SECURITY_CHECK} to fail, got {got}"
    assert f"{UNGUARDED} answered 422" in got[SECURITY_CHECK], got[SECURITY_CHECK]
    assert "POST /runs answered" not in got[SECURITY_CHECK], f"guarded endpoint named: {got}"


def test_security_check_fails_when_refused_keys_leave_no_audit_row(
    healthy: Any, tmp_path: Path
) -> None:
    got = _security_check_against(healthy, tmp_path, "--unaudited")
    assert set(got) == {SECURITY_CHECK}, f"expected only {SECURITY_CHECK} to fail, got {got}"
    assert "failed logins missing from system_logs" in got[SECURITY_CHECK], got[SECURITY_CHECK]
