"""SQL probes."""

from __future__ import annotations

__all__ = ["sql_ok"]


def sql_ok(conninfo: str, timeout: int = 1) -> bool:
    """True when `SELECT 1` succeeds over a fresh connection."""
    import psycopg

    try:
        with psycopg.connect(conninfo, connect_timeout=timeout, autocommit=True) as conn:
            conn.execute("SELECT 1")
            return True
    except psycopg.Error:
        return False
