"""A session reuses its target exactly as it is: a stopped service is reported, never repaired.

`pytest checks -m 'not slow'` runs in a subprocess against a real embedded stack whose API
(then database) this module stopped: exactly the checks that need that service fail, and the
service is still stopped afterwards. One stack serves both cases; the service is started
again between them by the test, never by the harness.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from opsdrill.targets.local import LocalTarget, mlflow_service
from tests.conftest import world_traversable_tmpdir

REPO = Path(__file__).resolve().parents[1]
#: the CPU row is everyone's on a shared machine, not the stack's: no stop here touches it
ENV = {"OPSDRILL_THRESHOLDS": '{"cpu": [100, 100]}'}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def own_stack() -> Iterator[LocalTarget]:
    """A stack of this module's own: stopping the session stack's API would break others."""
    where = world_traversable_tmpdir("opsdrill-session-")
    target = LocalTarget(where / "state")
    target.up(say=lambda _line: None)
    try:
        yield target
    finally:
        target.destroy()
        shutil.rmtree(where, ignore_errors=True)


def run_checks(spec: str, junit: Path) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """(the run, ids of the checks that failed or errored) of `pytest checks -m 'not slow'`."""
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "checks", "--target", spec, "-m", "not slow",
         "-p", "no:cacheprovider", "-q", f"--junitxml={junit}"],
        cwd=REPO, env={**os.environ, **ENV}, capture_output=True, text=True, timeout=600,
        check=False,
    )  # fmt: skip
    assert junit.exists(), done.stdout[-3000:] + done.stderr[-2000:]
    bad = set()
    for case in ET.parse(junit).iter("testcase"):
        if case.find("failure") is not None or case.find("error") is not None:
            bad.add(f"{case.get('classname', '').rsplit('.', 1)[-1]}::{case.get('name')}")
    return done, bad


#: with the API stopped: every check that asks the API something (directly, or through the
#: /metrics figures the threshold rows and the pool check read), and "every service is running"
API_DOWN = {
    "test_daily::test_1_every_service_is_running",
    "test_daily::test_4_api_health_is_ok",
    "test_indexes_and_pool::test_pool_fits_the_server_and_nobody_waits",
    "test_maintenance::test_maintenance_mode_round_trip",
    "test_smoke::test_forecast_returns_horizon_points",
    "test_smoke::test_health_reports_every_component_ok",
    "test_security::test_mutating_endpoints_refuse_a_missing_or_wrong_key",
    "test_smoke::test_training_run_completes_and_serves",
    "test_thresholds::test_threshold_row[active_runs]",
    "test_thresholds::test_threshold_row[api_p95]",
    "test_thresholds::test_threshold_row[cpu]",
    "test_thresholds::test_threshold_row[db_connections]",
    "test_thresholds::test_threshold_row[disk]",
    "test_thresholds::test_threshold_row[error_rate]",
    "test_thresholds::test_threshold_row[memory]",
    # the dashboard's API panels go blank; Redis use and hit ratio are read from the API
    "test_grafana_dashboard::test_every_panel_has_data",
    "test_redis::test_app_uses_redis",
    "test_redis::test_hit_ratio_reported",
}
#: with PostgreSQL stopped: every check that reads the database (or gets a figure through
#: it), /health and the forecast (the app reports and needs the database), the maintenance
#: round trip, and "every service is running"; only file, host and rule-file checks pass
DB_DOWN = {
    # the database panels go blank; no forecast succeeds, so the cache sees no lookups
    "test_grafana_dashboard::test_every_panel_has_data",
    "test_redis::test_hit_ratio_reported",
    "test_daily::test_1_every_service_is_running",
    "test_daily::test_3_database_answers_select_1",
    "test_daily::test_4_api_health_is_ok",
    "test_daily::test_5_active_runs_below_threshold",
    "test_daily::test_6_error_rows_in_24h_below_threshold",
    "test_errors_and_runs::test_completed_runs_have_consistent_durations",
    "test_errors_and_runs::test_error_rows_in_the_last_hour_below_threshold",
    "test_errors_and_runs::test_no_exception_type_dominates_the_errors",
    "test_errors_and_runs::test_oldest_queued_run_is_recent",
    "test_errors_and_runs::test_queue_depth_below_threshold",
    "test_errors_and_runs::test_running_runs_are_not_long_running",
    "test_indexes_and_pool::test_index_exists_and_is_valid[idx_models_run_id]",
    "test_indexes_and_pool::test_index_exists_and_is_valid[idx_runs_status]",
    "test_indexes_and_pool::test_index_exists_and_is_valid[idx_runs_status_created_at]",
    "test_indexes_and_pool::test_index_exists_and_is_valid[idx_runs_status_start_time]",
    "test_indexes_and_pool::test_index_exists_and_is_valid[idx_system_logs_level_created]",
    "test_indexes_and_pool::test_pool_fits_the_server_and_nobody_waits",
    "test_indexes_and_pool::test_runbook_query_uses_an_index[3.1.2 errors last hour]",
    "test_indexes_and_pool::test_runbook_query_uses_an_index[3.1.3 queue]",
    "test_indexes_and_pool::test_runbook_query_uses_an_index[3.1.3 running runs]",
    "test_indexes_and_pool::test_runbook_query_uses_an_index[4.3 slowest completed runs]",
    "test_maintenance::test_maintenance_mode_round_trip",
    "test_maintenance::test_reindex_concurrently_and_vacuum_analyze_take_effect",
    "test_errors_and_runs::test_slowest_completed_runs_within_the_long_running_limit",
    "test_errors_and_runs::test_training_times_fit_inside_their_runs",
    "test_monthly::test_archive_exports_exactly_what_it_deletes",
    "test_monthly::test_model_storage_matches_the_files",
    "test_monthly::test_capacity_figures",
    "test_monthly::test_failed_logins_per_day_below_threshold",
    "test_monthly::test_recorded_models_exist_on_disk",
    "test_smoke::test_forecast_returns_horizon_points",
    "test_security::test_mutating_endpoints_refuse_a_missing_or_wrong_key",
    "test_smoke::test_health_reports_every_component_ok",
    "test_smoke::test_training_run_completes_and_serves",
    "test_thresholds::test_threshold_row[active_runs]",
    "test_thresholds::test_threshold_row[api_p95]",
    "test_thresholds::test_threshold_row[cpu]",
    "test_thresholds::test_threshold_row[db_connections]",
    "test_thresholds::test_threshold_row[disk]",
    "test_thresholds::test_threshold_row[error_rate]",
    "test_thresholds::test_threshold_row[memory]",
    "test_weekly::test_dead_tuple_ratio_below_threshold",
    "test_weekly::test_log_retention_deletes_only_rows_past_the_limit",
    "test_weekly::test_log_retention_keeps_nothing_older_than_90_days",
    "test_weekly::test_materialized_views_have_a_unique_index",
    "test_weekly::test_no_large_index_goes_unused",
    "test_weekly::test_no_run_running_for_more_than_24h",
    "test_weekly::test_weekly_maintenance_runs_and_refreshes_concurrently",
    "test_weekly::test_weekly_performance_report_holds_real_figures",
}

# With MLflow installed the stack runs it (backend store: its own database in the stack's
# PostgreSQL). API down: every MLflow check passes, none of them asks the API. Database down:
# both agreement checks fail: each reads the runs table (`read`), and listing MLflow's runs
# needs MLflow's backend store, in the same PostgreSQL; MLflow's /health does not touch its
# store, so `test_mlflow_server_answers` passes (the server process is fine).
if mlflow_service.installed():
    DB_DOWN |= {
        "test_mlflow::test_completed_runs_of_the_last_day_are_in_mlflow_with_equal_metrics",
        "test_mlflow::test_every_mlflow_run_points_back_to_a_run_row",
    }


@pytest.mark.parametrize(
    ("service", "expected"), [("api", API_DOWN), ("db", DB_DOWN)], ids=["api", "db"]
)
def test_a_stopped_service_is_reported_and_left_stopped(
    own_stack: LocalTarget, tmp_path: Path, service: str, expected: set[str]
) -> None:
    svc = own_stack.service(service)
    svc.stop()
    try:
        t0 = time.monotonic()
        done, failed = run_checks(f"local:{own_stack.state_dir}", tmp_path / "junit.xml")
        print(f"{service} down: pytest checks took {time.monotonic() - t0:.1f} s")
        assert not svc.is_running(), f"the session started the stopped {service} again"
        assert done.returncode == 1, done.stdout[-2000:]
        assert failed == expected, (
            f"unexpected: {sorted(failed - expected)}; missing: {sorted(expected - failed)}"
        )
    finally:
        svc.start()
        own_stack.wait_healthy(timeout=60)


def test_a_state_dir_that_does_not_exist_is_one_sentence_and_exit_2(tmp_path: Path) -> None:
    missing = tmp_path / "typo" / "state"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "checks/test_daily.py", "--target", f"local:{missing}",
         "-p", "no:cacheprovider", "-q"],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stdout[-2000:]
    assert f"state directory {missing} does not exist" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr
    assert not missing.exists() and not missing.parent.exists()
