"""Runs MLflow has not seen yet: completed in the database, their tracking still `pending`
(nf_auto_runner.tracking's sweep logs them once MLflow answers again)."""

from __future__ import annotations

import psycopg

__all__ = ["pending_tracking"]

PENDING = "SELECT count(*) FROM runs WHERE status = 'completed' AND tracking_status = 'pending'"


def pending_tracking(dsn: str) -> int:
    """How many completed runs wait to be logged to MLflow."""
    with psycopg.connect(dsn, autocommit=True, connect_timeout=3) as conn:
        row = conn.execute(PENDING).fetchone()
    return int(row[0]) if row else 0
