"""The app's connection pool, its health probe, and recovery from a database outage.

psycopg_pool reconnects with exponential backoff: after a minute of outage its next attempt
can be half a minute away. So the pool is not trusted to heal itself: when a checkout fails
and a direct short-timeout connect succeeds, the pool is replaced by a fresh one. A watchdog
thread probes twice a second, so recovery happens even when nobody calls /health.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any

import psycopg
from nf_auto_runner.config import Settings, redact_url
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

__all__ = ["Database", "DatabaseUnavailable", "ProbeResult", "connect"]

log = logging.getLogger(__name__)

PROBE_TIMEOUT = 0.5  # hard limit on one database probe, seconds
PROBE_ABANDON = 3.0  # a probe stuck this long is given up and a new one started
MAX_STUCK_PROBES = 8
POOL_GRACE = 2.0  # a pool this young is still connecting: never replace it yet
#: TCP keepalives and a user timeout: a silently dropped peer breaks the socket in seconds
#: instead of leaving a query blocked for the kernel's default (minutes to hours)
TCP_KWARGS = {
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 3,
    "tcp_user_timeout": 10_000,
}
CONNECT_TIMEOUT = 2  # libpq's minimum effective connect_timeout


class DatabaseUnavailable(Exception):
    """The database cannot be reached now; callers answer 503 or exit with this message."""


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    latency_ms: float
    error: str | None = None
    busy: bool = False  # the pool was saturated; the database itself answered


def connect(
    url: str,
    *,
    autocommit: bool = False,
    timeout: int = CONNECT_TIMEOUT,
    application_name: str = "nf_auto_runner",
) -> psycopg.Connection[Any]:
    """A direct connection with dict rows, or DatabaseUnavailable with a usable message."""
    try:
        return psycopg.connect(
            url,
            autocommit=autocommit,
            connect_timeout=timeout,
            row_factory=dict_row,
            application_name=application_name,
        )
    except psycopg.OperationalError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DatabaseUnavailable(
            f"database unreachable at {redact_url(url)} ({first}); is PostgreSQL running? "
            f"check DATABASE_URL"
        ) from exc


class Database:
    """Pool + probe + self-healing. One per app process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._pool = self._new_pool()
        self._probe_future: Future[ProbeResult] | None = None
        self._probe_started = 0.0
        self._stuck = 0
        self._down_since: float | None = None
        self.last_probe: ProbeResult | None = None
        self.pool_resets = 0
        self._stop = threading.Event()
        self._watchdog: threading.Thread | None = None

    # -- pool ------------------------------------------------------------------------------
    def _new_pool(self) -> ConnectionPool[Any]:
        s = self.settings
        self._pool_created = time.monotonic()
        pool: ConnectionPool[Any] = ConnectionPool(
            s.database_url,
            min_size=s.pool_size,
            max_size=s.pool_size + s.pool_overflow,
            timeout=s.pool_timeout,
            max_lifetime=s.pool_recycle,
            max_idle=600.0,
            reconnect_timeout=3600.0,
            check=ConnectionPool.check_connection,
            kwargs={
                "row_factory": dict_row,
                "connect_timeout": CONNECT_TIMEOUT,
                "application_name": "nf_auto_runner",
                "options": f"-c statement_timeout={int(s.statement_timeout * 1000)}",
                **TCP_KWARGS,
            },
            open=False,
            name="nf_auto_runner",
        )
        pool.open(wait=False)  # never block start-up on the database
        return pool

    @property
    def pool(self) -> ConnectionPool[Any]:
        return self._pool

    def reset_pool(self) -> None:
        """Swap in a fresh pool; the old one closes in the background."""
        with self._lock:
            old, self._pool = self._pool, self._new_pool()
            self.pool_resets += 1
        log.warning("database pool recreated after an outage (reset #%d)", self.pool_resets)
        threading.Thread(target=old.close, kwargs={"timeout": 1.0}, daemon=True).start()

    def stats(self) -> dict[str, int]:
        st = self._pool.get_stats()
        return {
            "size": st.get("pool_size", 0),
            "available": st.get("pool_available", 0),
            "waiting": st.get("requests_waiting", 0),
            "max": self.settings.pool_size + self.settings.pool_overflow,
        }

    @property
    def is_down(self) -> bool:
        return self._down_since is not None

    @contextlib.contextmanager
    def connection(self, timeout: float | None = None) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection in a transaction; outages become DatabaseUnavailable.

        While the database is known to be down, callers wait at most 0.5 s instead of the
        pool timeout, so requests fail fast instead of piling up.
        """
        if timeout is None:
            timeout = PROBE_TIMEOUT if self.is_down else self.settings.pool_timeout
        pool = self._pool
        try:
            with pool.connection(timeout=timeout) as conn:
                yield conn
        except psycopg.errors.QueryCanceled:
            raise  # statement_timeout: the database is up but busy (a held lock?)
        except (PoolTimeout, psycopg.OperationalError) as exc:
            if not self._saturated(exc):  # saturation is load, not an outage
                self._mark_down(exc)
            raise DatabaseUnavailable("database unavailable") from exc

    def _saturated(self, exc: BaseException) -> bool:
        """A checkout timed out because every connection the pool may open is in use."""
        st = self.stats()
        return isinstance(exc, PoolTimeout) and st["size"] >= st["max"] and st["available"] == 0

    # -- probing ---------------------------------------------------------------------------
    def _mark_down(self, exc: BaseException) -> None:
        if self._down_since is None:
            self._down_since = time.monotonic()
            log.error(
                "database unavailable: %s",
                str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__,
            )

    def _probe_once(self) -> ProbeResult:
        t0 = time.perf_counter()
        try:
            with self._pool.connection(timeout=PROBE_TIMEOUT * 0.6) as conn:
                conn.execute("SELECT 1")
        except (PoolTimeout, psycopg.Error) as exc:
            error = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            stats = self.stats()
            if self._saturated(exc) and self._direct_ok():
                # every pooled connection is in use by requests: load, not an outage
                self._down_since = None
                return ProbeResult(True, (time.perf_counter() - t0) * 1000, busy=True)
            self._mark_down(exc)
            lost = stats["size"] < self.settings.pool_size
            young = time.monotonic() - self._pool_created < POOL_GRACE
            suspect = not young and (lost or isinstance(exc, psycopg.OperationalError))
            if suspect and self._direct_ok():
                self.reset_pool()  # the database is back but the pool has not noticed
            return ProbeResult(False, (time.perf_counter() - t0) * 1000, error)
        if self._down_since is not None:
            log.warning(
                "database available again after %.1f s", time.monotonic() - self._down_since
            )
            self._down_since = None
        return ProbeResult(True, (time.perf_counter() - t0) * 1000)

    def _direct_ok(self) -> bool:
        try:
            with psycopg.connect(
                self.settings.database_url,
                connect_timeout=CONNECT_TIMEOUT,
                application_name="nf_auto_runner-probe",
            ) as conn:
                conn.execute("SELECT 1")
            return True
        except psycopg.Error:
            return False

    def probe(self, timeout: float = PROBE_TIMEOUT) -> ProbeResult:
        """SELECT 1 with a hard deadline.

        Single-flight: callers share the probe in progress, so a hung database cannot pile up
        threads. A probe stuck longer than PROBE_ABANDON is abandoned (a hung socket may never
        return) and a fresh one started, up to MAX_STUCK_PROBES stuck threads at once.
        """
        t0 = time.perf_counter()
        abandoned: Future[ProbeResult] | None = None
        with self._lock:
            fut = self._probe_future
            stale = (
                fut is not None
                and not fut.done()
                and time.monotonic() - self._probe_started > PROBE_ABANDON
                and self._stuck < MAX_STUCK_PROBES
            )
            if fut is None or fut.done() or stale:
                if stale:
                    self._stuck += 1
                    abandoned = fut
                fut = self._start_probe()
        if abandoned is not None:
            # outside the lock: a probe that finished meanwhile runs the callback at once, here,
            # and _unstick takes the lock (registered under it, that deadlocked every caller)
            abandoned.add_done_callback(lambda _: self._unstick())
        try:
            result = fut.result(timeout=timeout)
        except FutureTimeout:
            result = ProbeResult(
                False,
                (time.perf_counter() - t0) * 1000,
                f"database did not answer within {timeout:.1f} s",
            )
            self._mark_down(TimeoutError(result.error))
        self.last_probe = result
        return result

    def _start_probe(self) -> Future[ProbeResult]:
        """Run _probe_once on its own daemon thread (caller holds the lock)."""
        fut: Future[ProbeResult] = Future()

        def run() -> None:
            try:
                fut.set_result(self._probe_once())
            except BaseException as exc:
                fut.set_exception(exc)

        self._probe_future, self._probe_started = fut, time.monotonic()
        threading.Thread(target=run, name="db-probe", daemon=True).start()
        return fut

    def _unstick(self) -> None:
        with self._lock:
            self._stuck = max(0, self._stuck - 1)

    # -- watchdog --------------------------------------------------------------------------
    def start_watchdog(self, interval: float = 0.5) -> None:
        """Probe in the background so the pool heals with no traffic."""

        def loop() -> None:
            while not self._stop.wait(interval):
                with contextlib.suppress(Exception):
                    self.probe()

        self._watchdog = threading.Thread(target=loop, name="db-watchdog", daemon=True)
        self._watchdog.start()

    def close(self) -> None:
        self._stop.set()
        if self._watchdog is not None:
            self._watchdog.join(timeout=2)
        with contextlib.suppress(Exception):
            self._pool.close(timeout=2.0)
