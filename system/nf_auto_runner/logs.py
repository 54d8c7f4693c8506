"""Logging: `logs/app/app.log` (INFO+), `logs/app/error.log` (ERROR+), and ERROR rows in
`system_logs`, which the runbook's error checks (§3.1.2, §4.3) read.

The database handler never blocks the caller: records go to a bounded queue and a thread
writes them over its own connection. While the database is down records are held (up to
1000) and written once it is back, with their original timestamps; the writer's own failures
are never logged back into itself.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
import warnings
from collections import deque
from typing import Any

import psycopg
from nf_auto_runner.config import Settings

__all__ = ["SystemLogHandler", "setup_logging"]

FORMAT = "%(asctime)s %(levelname)s %(process)d %(name)s: %(message)s"
QUIET = (
    "lightning",
    "lightning.pytorch",
    "pytorch_lightning",
    "lightning_fabric",
    "psycopg.pool",
    "neuralforecast",
    "torch",
)


class SystemLogHandler(logging.Handler):
    """ERROR and CRITICAL records (and `audit` warnings) into system_logs, best effort,
    off the caller's thread."""

    def __init__(self, database_url: str, capacity: int = 1000) -> None:
        super().__init__(level=logging.WARNING)
        self.database_url = database_url
        self._queue: queue.Queue[tuple[Any, ...] | None] = queue.Queue(maxsize=capacity)
        self._conn: psycopg.Connection[Any] | None = None
        #: rows not yet written (database down): kept, oldest dropped first beyond the bound
        self._pending: deque[tuple[Any, ...]] = deque(maxlen=capacity)
        self._retry_at = 0.0
        self._thread = threading.Thread(target=self._run, name="system-logs", daemon=True)
        self._thread.start()

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno < logging.ERROR and not getattr(record, "audit", False):
            return  # ERROR and above, plus audit records (failed logins, runbook §3.3.2)
        if record.name.startswith(("psycopg", __name__)) or getattr(record, "skip_db", False):
            return  # never log our own failures into ourselves; skip rows written elsewhere
        exc_type = getattr(record, "exception_type", None)
        if exc_type is None and record.exc_info and record.exc_info[0] is not None:
            exc_type = record.exc_info[0].__name__
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not kill logging
            message = str(record.msg)
        row = (
            record.created,
            record.levelname,
            message[:4000],
            getattr(record, "run_id", None),
            exc_type,
            record.name,
        )
        with contextlib.suppress(queue.Full):  # dropped when full; error.log still has it
            self._queue.put_nowait(row)

    def _connected(self) -> bool:
        if self._conn is not None and not self._conn.closed:
            return True
        if time.monotonic() < self._retry_at:
            return False
        try:
            self._conn = psycopg.connect(
                self.database_url,
                autocommit=True,
                connect_timeout=2,
                application_name="nf_auto_runner-logs",
            )
            return True
        except psycopg.Error:
            self._retry_at = time.monotonic() + 2.0
            return False

    def _write_pending(self) -> None:
        """Write held rows in order; on failure keep them (bounded) for the next attempt."""
        while self._pending and self._connected():
            assert self._conn is not None
            try:
                self._conn.execute(
                    "INSERT INTO system_logs (created_at, log_level, log_message, run_id, "
                    "exception_type, logger) VALUES (to_timestamp(%s), %s, %s, %s, %s, %s)",
                    self._pending[0],
                )
                self._pending.popleft()
            except psycopg.Error:
                with contextlib.suppress(psycopg.Error):
                    self._conn.close()
                self._conn = None
                self._retry_at = time.monotonic() + 2.0

    def _run(self) -> None:
        while True:
            try:
                row = self._queue.get(timeout=2.0 if self._pending else None)
            except queue.Empty:
                row = ()
            if row is None:
                return
            if row:
                self._pending.append(row)  # a full deque drops the oldest row
            self._write_pending()

    def flush(self, timeout: float = 2.0) -> None:
        """Wait (bounded) until queued rows are written; used before a worker exits."""
        deadline = time.monotonic() + timeout
        while (not self._queue.empty() or self._pending) and time.monotonic() < deadline:
            time.sleep(0.02)

    def close(self) -> None:
        self.flush()
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(None)
        super().close()


def setup_logging(settings: Settings, *, to_database: bool = True) -> SystemLogHandler | None:
    """Configure the root logger for this process; return the database handler, if any."""
    settings.logs_dir.mkdir(parents=True, exist_ok=True)
    logging.raiseExceptions = False  # a full disk must not spray tracebacks on every record
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
