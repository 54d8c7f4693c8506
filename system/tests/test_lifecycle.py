"""Start-up and shutdown: config validation, refusal to start on a broken config, graceful
SIGTERM (workers stopped, runs requeued, pid file removed), orphaned-run recovery, and
migrations racing from two processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from opsdrill.plugin.waiting import until
from system.tests.conftest import App, Postgres


def test_check_config_accepts_good_and_rejects_broken(app: App, tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("max_parallel_runs: 3\npool:\n  size: 2\n  timeout: 4\n")
    ok = app.main("--check-config", env=dict(app.env, NF_CONFIG=str(good)))
    assert ok.returncode == 0 and ok.stdout.strip() == "config OK"
    cases = {
        "max_parallel_runs: [1,\n": "does not parse",
        "max_paralel_runs: 2\n": "unknown key(s) max_paralel_runs",
        "pool:\n  size: 0\n": "pool.size",
        "gpu_memory_limit: 7\n": "gpu_memory_limit",
    }
    for text, expected in cases.items():
        bad = tmp_path / "bad.yaml"
        bad.write_text(text)
        done = app.main("--check-config", env=dict(app.env, NF_CONFIG=str(bad)))
        assert done.returncode != 0 and expected in done.stderr, (text, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1
    bad_url = app.main("--check-config", env=dict(app.env, DATABASE_URL="mysql://x/y"))
    assert bad_url.returncode != 0 and "DATABASE_URL" in bad_url.stderr


def test_server_refuses_to_start_on_a_broken_config(app: App, tmp_path: Path) -> None:
    bad = tmp_path / "broken.yaml"
    bad.write_text("pool: {size: 4\n")
    done = app.main("--port", "9", env=dict(app.env, NF_CONFIG=str(bad)), timeout=30)
    assert done.returncode != 0
    assert "does not parse" in done.stderr and "Traceback" not in done.stderr


def test_sigterm_requeues_runs_then_restart_recovers_orphans(app: App, pg: Postgres) -> None:
    until(lambda: app.client.get("/health").status_code == 200, 30, "app healthy")
    run_id = app.admin.post(
        "/runs",
        json={"series_id": "synthetic_3", "model_name": "NHITS", "horizon": 7, "max_steps": 5000},
    ).json()["run_id"]
    app.wait_run(run_id, ("running",), timeout=30)
    pid_file = app.home / "run" / "app.pid"
    assert int(pid_file.read_text()) == app.pid
    assert app.stop(signal.SIGTERM) == 0
    assert not pid_file.exists()
    row = pg.sql("SELECT status, worker_pid FROM runs WHERE run_id = %s", (run_id,))[0]
    assert row["status"] == "scheduled"  # requeued: nothing lost
    pg.sql("UPDATE runs SET status = 'cancelled', end_time = now() WHERE run_id = %s", (run_id,))

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a pid that no longer runs
    insert = (
        "INSERT INTO runs (run_name, experiment_id, status, model_name, series_id, "
        "horizon, start_time, worker_host, worker_pid, heartbeat_at) SELECT %s, "
        "experiment_id, 'running', 'MLP', 'airpassengers', 12, now(), %s, %s, %s "
        "FROM experiments WHERE experiment_name = 'default' RETURNING run_id"
    )
    here = socket.gethostname()
    lost_pid = pg.sql(insert, ("lost-pid", here, dead.pid, None))[0]["run_id"]
    stale = pg.sql(
        insert.replace("%s FROM", "now() - interval '10 minutes' FROM"),
        ("stale", "elsewhere", 1234),
    )[0]["run_id"]
    alive = pg.sql(insert.replace("%s FROM", "now() FROM"), ("alive", here, os.getpid()))[0][
        "run_id"
    ]
    app.start()
    try:
        for rid in (lost_pid, stale):
            r = app.client.get(f"/runs/{rid}").json()
            assert r["status"] == "failed" and r["error_message"].startswith("orphaned"), r
        assert app.client.get(f"/runs/{alive}").json()["status"] == "running"
        logs = pg.sql("SELECT run_id FROM system_logs WHERE exception_type = 'WorkerLost'")
        assert {lost_pid, stale} <= {r["run_id"] for r in logs}
    finally:
        app.admin.post(f"/runs/{alive}/cancel")


def test_concurrent_migrations_apply_each_file_once(app: App, pg: Postgres) -> None:
    pg.sql("DROP DATABASE IF EXISTS nf_migrate_race")
    pg.sql("CREATE DATABASE nf_migrate_race OWNER nf_app")
    env = dict(app.env, DATABASE_URL=pg.dsn.replace("/ts_forecast_system", "/nf_migrate_race"))
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "nf_auto_runner.ops", "migrate"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    results = [(*p.communicate(timeout=60), p.returncode) for p in procs]
    assert all(code == 0 for _, _, code in results), results
    outs = sorted(out.strip() for out, _, _ in results)
    assert outs[0].startswith("migrations applied") and outs[1] == "schema up to date"
    pg.sql("DROP DATABASE nf_migrate_race")


def test_port_in_use_is_refused_in_one_line(app: App) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        port = holder.getsockname()[1]
        done = app.main("--port", str(port), timeout=30)
    assert done.returncode != 0
    assert "address already in use" in done.stderr and "Traceback" not in done.stderr
    assert int((app.home / "run" / "app.pid").read_text()) == app.pid  # untouched


def test_listening_socket_is_tcp_so_responses_are_not_nagled() -> None:
    """Regression: a proto-0 socket made asyncio skip TCP_NODELAY: +40 ms per keep-alive reply."""
    from nf_auto_runner.app.main import _listen

    sock = _listen("127.0.0.1", 0)
    try:
        assert sock.proto == socket.IPPROTO_TCP
    finally:
        sock.close()
