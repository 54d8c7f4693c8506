"""A throwaway PostgreSQL cluster made with `initdb`, owned by an unprivileged user.

PostgreSQL refuses to run as root, and CI runs as root: the cluster then belongs to the
`postgres` system user and every server process runs as that user.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from opsdrill.errors import MissingDependency, PrivilegeError, ServiceError
from opsdrill.processes import pid_alive

__all__ = ["Cluster", "find_bindir", "run_user"]

DATABASE = "ts_forecast_system"
APP_ROLE = "nf_app"


def find_bindir() -> Path:
    """The directory holding initdb/postgres: $OPSDRILL_PG_BINDIR, Debian's layout, or PATH."""
    if env := os.environ.get("OPSDRILL_PG_BINDIR"):
        return Path(env)
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    if candidates:
        return Path(candidates[-1]).parent
    if found := shutil.which("initdb"):
        return Path(found).resolve().parent
    raise MissingDependency(
        "PostgreSQL server binaries (initdb, postgres) were not found: install them "
        "(apt-get install postgresql) or set OPSDRILL_PG_BINDIR to their directory"
    )


def run_user() -> str | None:
    """The user the cluster runs as: None (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise PrivilegeError(
            "PostgreSQL refuses to run as root and there is no 'postgres' user to run it as: "
            "create one (useradd --system --home /var/lib/postgresql postgres) or run opsdrill "
            "as an unprivileged user"
        ) from None
    return "postgres"


@dataclass(frozen=True)
class Cluster:
    """Where the cluster's files are and who owns them."""

    root: Path  # holds data/ and socket/
    port: int
    bindir: Path
    user: str | None

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        return self.root / "socket"

    @property
    def initialized(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists()

    def admin_conninfo(self, dbname: str = "postgres") -> str:
        """Superuser over the unix socket (trust): for set-up, faults and recovery only."""
        return f"host={self.socket_dir} port={self.port} user=postgres dbname={dbname}"

    def app_dsn(self, password: str) -> str:
        return f"postgresql://{APP_ROLE}:{password}@127.0.0.1:{self.port}/{DATABASE}"

    def server_argv(self) -> list[str]:
        return [
            str(self.bindir / "postgres"),
            "-D", str(self.data_dir),
            "-p", str(self.port),
            "-k", str(self.socket_dir),
            "-c", "listen_addresses=127.0.0.1",
            # room for the harness's own superuser sessions (recovery, probes, snapshots)
            # while a pool-exhaustion drill holds every ordinary slot
            "-c", "superuser_reserved_connections=10",
        ]  # fmt: skip

    def init(self) -> None:
        """Run initdb once; the configuration lives in postgresql.auto.conf-style overrides."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(exist_ok=True)
        self._chown(self.root)
        self._chown(self.socket_dir)
        self._check_reachable()
        if self.initialized:
            return
        cmd = [
            str(self.bindir / "initdb"),
            "-D", str(self.data_dir),
            "-U", "postgres",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "-E", "UTF8",
            "--locale=C",
            "--no-sync",
        ]  # fmt: skip
        done = subprocess.run(cmd, user=self.user, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise ServiceError(f"initdb failed in {self.data_dir}: {done.stderr.strip()[-400:]}")
        with open(self.data_dir / "postgresql.conf", "a") as conf:
            conf.write(
                "\n# opsdrill embedded stack\n"
                "shared_preload_libraries = 'pg_stat_statements'\n"
                "pg_stat_statements.track = all\n"
                "max_connections = 100\n"
                "shared_buffers = 128MB\n"
                "log_min_messages = warning\n"
                "log_line_prefix = '%m [%p] %q%u@%d '\n"
            )

    def bootstrap_sql(self, password: str) -> list[tuple[str, str]]:
        """(database, statement) pairs that create the app's role and database, idempotently."""
        quoted = password.replace("'", "''")
        return [
            (
                "postgres",
                f"DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{APP_ROLE}') "
                f"THEN CREATE ROLE {APP_ROLE} LOGIN CREATEDB PASSWORD '{quoted}'; "
                f"ELSE ALTER ROLE {APP_ROLE} LOGIN CREATEDB PASSWORD '{quoted}'; END IF; END $$",
            ),
            ("postgres", f"GRANT pg_monitor, pg_signal_backend TO {APP_ROLE}"),
            ("postgres", f"CREATE DATABASE {DATABASE} OWNER {APP_ROLE}"),
            (DATABASE, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements"),
        ]

    def remove_stale_pidfile(self, dead_pid: int | None = None) -> None:
        """A SIGKILLed postmaster leaves postmaster.pid and the socket's lock file behind.

        PostgreSQL refuses to start while the pid they name is alive, and pids are recycled
        fast on a busy machine: a file naming `dead_pid` (a postmaster we started and know,
        by its start time, to be gone) is stale even when some other process now has that pid.
        """
        lock_files = [
            self.data_dir / "postmaster.pid",
            self.socket_dir / f".s.PGSQL.{self.port}.lock",
        ]
        for path in lock_files:
            try:
                pid = int(path.read_text().split("\n", 1)[0])
            except (FileNotFoundError, ValueError):
                continue
            if pid == dead_pid or not pid_alive(pid):
                path.unlink(missing_ok=True)
                if path.name.endswith(".lock"):  # the socket itself goes with its lock
                    (self.socket_dir / path.name.removesuffix(".lock")).unlink(missing_ok=True)

    def _chown(self, path: Path) -> None:
        if self.user is None:
            return
        entry = pwd.getpwnam(self.user)
        os.chown(path, entry.pw_uid, entry.pw_gid)
        path.chmod(0o700 if path == self.root else 0o755)

    def _check_reachable(self) -> None:
        """The run user must be able to reach the cluster directory through every parent."""
        if self.user is None:
            return
        probe = subprocess.run(["test", "-w", str(self.root)], user=self.user, check=False)
        if probe.returncode != 0:
            raise PrivilegeError(
                f"the {self.user!r} user cannot write {self.root} (a parent directory is not "
                "traversable by others): choose a --state-dir under a world-traversable "
                "directory such as /var/tmp"
            )
