"""A throwaway PostgreSQL cluster and the nf_auto_runner app, real processes, for the stack's tests.

The cluster runs as `postgres` when we are root (PostgreSQL refuses root), on a free port in a
world-traversable temp dir, and is removed at the end of the session.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from opsdrill.plugin.waiting import until

SYSTEM = Path(__file__).resolve().parents[1]
if str(SYSTEM) not in sys.path:  # the tests read archive files with the package's own code
    sys.path.append(str(SYSTEM))
PG_BIN = Path(os.environ.get("NF_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
API_KEY = "test-key-0123456789"
PASSWORD = "test-secret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Postgres:
    """One PostgreSQL cluster: start, SIGKILL, restart. The postmaster is our direct child."""

    def __init__(self, root: Path) -> None:
        self.root, self.port = root, free_port()
        self.data, self.sock = root / "data", root / "sock"
        self.user = "postgres" if os.geteuid() == 0 else None
        self.proc: subprocess.Popen[bytes] | None = None
        self.admin = f"host={self.sock} port={self.port} user=postgres dbname=ts_forecast_system"
        self.dsn = f"postgresql://nf_app:{PASSWORD}@127.0.0.1:{self.port}/ts_forecast_system"

    def init(self) -> None:
        self.sock.mkdir(parents=True)
        if self.user:
            shutil.chown(self.root, self.user)
            shutil.chown(self.sock, self.user)
        subprocess.run(
            [
                str(PG_BIN / "initdb"),
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
            ],
            user=self.user,
            check=True,
            capture_output=True,
        )
        self.start()
        with psycopg.connect(
            self.admin.replace("ts_forecast_system", "postgres"), autocommit=True
        ) as conn:
            conn.execute(f"CREATE ROLE nf_app LOGIN CREATEDB PASSWORD '{PASSWORD}'")
            conn.execute("GRANT pg_monitor, pg_signal_backend TO nf_app")
            conn.execute("CREATE DATABASE ts_forecast_system OWNER nf_app")
        with psycopg.connect(self.admin, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")

    def start(self) -> None:
        (self.data / "postmaster.pid").unlink(missing_ok=True)
        log = open(self.root / "pg.log", "ab")  # noqa: SIM115 - lives as long as the server
        self.proc = subprocess.Popen(
            [
                str(PG_BIN / "postgres"),
                "-D",
                str(self.data),
                "-p",
                str(self.port),
                "-k",
                str(self.sock),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "shared_preload_libraries=pg_stat_statements",
                "-c",
                "fsync=off",
            ],
            user=self.user,
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
        )
        proc = self.proc
        until(lambda: proc.poll() is not None or self.accepts(), 30, "PostgreSQL start")
        if proc.poll() is not None:
            raise AssertionError(f"PostgreSQL exited with {proc.returncode}; see pg.log")

    def accepts(self) -> bool:
        admin = self.admin.replace("ts_forecast_system", "postgres")
        with psycopg.connect(admin, connect_timeout=2) as conn:
            conn.execute("SELECT 1")
        return True

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        # backends notice the postmaster's death and exit; then the port is free again
        until(lambda: not _listening(self.port), 10, "PostgreSQL port released")

    def restart(self) -> None:
        for _ in range(50):  # a dying backend may still hold shared memory for a moment
            try:
                self.start()
                return
            except AssertionError:
                assert self.proc is not None
                self.proc.kill()
                self.proc.wait()
        raise AssertionError("PostgreSQL did not restart")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def sql(self, query: str, params: Any = None) -> list[dict[str, Any]]:
        from psycopg.rows import dict_row

        with psycopg.connect(self.admin, autocommit=True, row_factory=dict_row) as conn:
            cur = conn.execute(query, params)
            return cur.fetchall() if cur.description else []


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


class App:
    """The app under uvicorn as a subprocess, plus the ops CLI with the same environment."""

    def __init__(self, home: Path, pg: Postgres) -> None:
        self.home, self.pg = home, pg
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        pythonpath = os.pathsep.join(p for p in (str(SYSTEM), os.environ.get("PYTHONPATH")) if p)
        self.env = dict(
            os.environ,
            NF_HOME=str(home),
            DATABASE_URL=pg.dsn,
            NF_API_KEY=API_KEY,
            PYTHONPATH=pythonpath,
            NF_POLL_INTERVAL="0.2",
            MAX_PARALLEL_RUNS="2",
            NF_TRAIN_MAX_STEPS="20",
            NF_STATEMENT_TIMEOUT="3",
            PYTHONUNBUFFERED="1",
        )
        self.env.pop("NF_CONFIG", None)
        self.client = httpx.Client(base_url=self.url, timeout=10)
        self.admin = httpx.Client(base_url=self.url, timeout=10, headers={"X-API-Key": API_KEY})

    def start(self) -> None:
        log = open(self.home / "app.stdout", "ab")  # noqa: SIM115 - lives with the process
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "nf_auto_runner.app.main",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
            env=self.env,
            cwd=self.home,
            stdout=log,
            stderr=log,
        )
        until(lambda: self.client.get("/health").status_code == 200, 60, "app healthy")

    @property
    def pid(self) -> int:
        assert self.proc is not None, "the app was never started"
        return self.proc.pid

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout=timeout)

    def ops(
        self, *args: str, env: dict[str, str] | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "nf_auto_runner.ops", *args],
            env=env or self.env,
            cwd=self.home,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def main(
        self, *args: str, env: dict[str, str] | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "nf_auto_runner.app.main", *args],
            env=env or self.env,
            cwd=self.home,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def wait_run(
        self, run_id: int, statuses: tuple[str, ...], timeout: float = 90
    ) -> dict[str, Any]:
        box: dict[str, Any] = {}

        def done() -> bool:
            box.update(self.client.get(f"/runs/{run_id}").json())
            return box.get("status") in statuses

        until(done, timeout, f"run {run_id} reaching {statuses}", interval=0.2)
        return box


@pytest.fixture(scope="session")
def pg() -> Iterator[Postgres]:
    root = Path(tempfile.mkdtemp(prefix="nf_stack_pg_", dir="/var/tmp"))
    root.chmod(0o755)
    cluster = Postgres(root)
    try:
        cluster.init()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def app(pg: Postgres) -> Iterator[App]:
    home = Path(tempfile.mkdtemp(prefix="nf_stack_home_"))
    application = App(home, pg)
    seeded = application.ops("seed")
    assert seeded.returncode == 0, seeded.stderr
    application.start()
    try:
        yield application
    finally:
        if application.proc is not None and application.proc.poll() is None:
            application.stop()
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def trained(app: App) -> dict[str, Any]:
    """One completed MLP on airpassengers (h=12), trained through the API and executor."""
    resp = app.admin.post(
        "/runs",
        json={
            "series_id": "airpassengers",
            "model_name": "MLP",
            "horizon": 12,
            "run_name": "stack-test",
        },
    )
    assert resp.status_code == 201, resp.text
    run = app.wait_run(resp.json()["run_id"], ("completed", "failed", "cancelled"))
    assert run["status"] == "completed", run
    return run


@pytest.fixture
def healthy(app: App) -> App:
    """The app, after waiting until it answers /health 200 (an earlier test may be recovering)."""
    until(lambda: app.client.get("/health").status_code == 200, 30, "app healthy")
    return app
