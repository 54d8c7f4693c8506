"""Logging: `logs/app/app.log` (INFO+), `logs/app/error.log` (ERROR+), and ERROR rows in
`system_logs`, which the runbook's error checks (§3.1.2, §4.3) read.

The database handler never blocks the caller: records go to a bounded queue and a thread
writes them over its own connection. When the database is down records are dropped (they are
still in error.log), and the writer's own failures are never logged back into itself.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
import warnings
from typing import Any

import psycopg

from nf_auto_runner.config import Settings

__all__ = ["SystemLogHandler", "setup_logging"]

FORMAT = "%(asctime)s %(levelname)s %(process)d %(name)s: %(message)s"
QUIET = ("lightning", "lightning.pytorch", "pytorch_lightning", "lightning_fabric",
         "psycopg.pool", "neuralforecast", "torch")


class SystemLogHandler(logging.Handler):
    """ERROR and CRITICAL records into system_logs, best effort, off the caller's thread."""

    def __init__(self, database_url: str, capacity: int = 1000) -> None:
        super().__init__(level=logging.ERROR)
        self.database_url = database_url
        self._queue: queue.Queue[tuple[Any, ...] | None] = queue.Queue(maxsize=capacity)
        self._conn: psycopg.Connection[Any] | None = None
        self._retry_at = 0.0
        self._thread = threading.Thread(target=self._run, name="system-logs", daemon=True)
        self._thread.start()

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith(("psycopg", __name__)) or getattr(record, "skip_db", False):
            return  # never log our own failures into ourselves; skip rows written elsewhere
        exc_type = getattr(record, "exception_type", None)
        if exc_type is None and record.exc_info and record.exc_info[0] is not None:
            exc_type = record.exc_info[0].__name__
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not kill logging
            message = str(record.msg)
        row = (record.levelname, message[:4000], getattr(record, "run_id", None), exc_type,
               record.name)
        with contextlib.suppress(queue.Full):  # dropped when full; error.log still has it
            self._queue.put_nowait(row)

    def _write(self, row: tuple[Any, ...]) -> None:
        if self._conn is None or self._conn.closed:
            if time.monotonic() < self._retry_at:
                return
            try:
                self._conn = psycopg.connect(self.database_url, autocommit=True,
                                             connect_timeout=2,
                                             application_name="nf_auto_runner-logs")
            except psycopg.Error:
                self._retry_at = time.monotonic() + 2.0
                return
        try:
            self._conn.execute(
                "INSERT INTO system_logs (log_level, log_message, run_id, exception_type, logger)"
                " VALUES (%s, %s, %s, %s, %s)", row)
        except psycopg.Error:
            try:
                self._conn.close()
            finally:
                self._conn = None

    def _run(self) -> None:
        while True:
            row = self._queue.get()
            if row is None:
                return
            self._write(row)

    def flush(self, timeout: float = 2.0) -> None:
        """Wait (bounded) until queued rows are written; used before a worker exits."""
        deadline = time.monotonic() + timeout
        while not self._queue.empty() and time.monotonic() < deadline:
            time.sleep(0.02)

    def close(self) -> None:
        self.flush()
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(None)
        super().close()


def setup_logging(settings: Settings, *, to_database: bool = True) -> SystemLogHandler | None:
    """Configure the root logger for this process; return the database handler, if any."""
    settings.logs_dir.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    root.setLevel(settings.log_level)
    for h in list(root.handlers):
        root.removeHandler(h)
    fmt = logging.Formatter(FORMAT)
    app = logging.FileHandler(settings.logs_dir / "app.log", encoding="utf-8")
    app.setLevel(settings.log_level)
    err = logging.FileHandler(settings.logs_dir / "error.log", encoding="utf-8")
    err.setLevel(logging.ERROR)
    console = logging.StreamHandler()
    console.setLevel(logging.WARNING)
    for h in (app, err, console):
        h.setFormatter(fmt)
        root.addHandler(h)
    for name in QUIET:
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    logging.captureWarnings(False)
    handler = None
    if to_database:
        handler = SystemLogHandler(settings.database_url)
        root.addHandler(handler)
    return handler
