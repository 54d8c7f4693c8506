"""Nothing committed is lost: checksums of committed rows before the fault and after recovery.

Only rows that existed before the fault and could not legitimately change during it are
compared: reference data, models, metrics, and runs that had already finished. New rows are
allowed; a missing or altered old row is a failure.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["IntegritySnapshot", "take_snapshot"]

#: table -> (key column, extra filter that keeps only rows that must not change)
TABLES: dict[str, tuple[str, str]] = {
    "experiments": ("experiment_id", "TRUE"),
    "series": ("series_id, ds", "TRUE"),
    "runs": ("run_id", "status IN ('completed', 'failed', 'cancelled')"),
    "models": ("model_id", "TRUE"),
    "metrics": ("metric_id", "TRUE"),
}


@dataclass(frozen=True)
class IntegritySnapshot:
    counts: dict[str, int]
    checksums: dict[str, str]
    bounds: dict[str, str] = field(default_factory=dict)  # SQL filter fixing the row set

    def compare(self, after: IntegritySnapshot) -> list[str]:
        """Differences as sentences; empty when nothing was lost or altered."""
        problems = []
        for table, count in self.counts.items():
            if after.counts.get(table) != count:
                problems.append(
                    f"{table}: {count} committed rows before the fault, "
                    f"{after.counts.get(table)} after"
                )
            elif after.checksums.get(table) != self.checksums[table]:
                problems.append(f"{table}: same row count but contents changed (checksum differs)")
        return problems


def take_snapshot(conninfo: str, bounds: dict[str, str] | None = None) -> IntegritySnapshot:
    """Checksum each table's stable rows; pass `bounds` from an earlier snapshot to compare."""
    import psycopg

    counts, sums, fixed = {}, {}, {}
    with psycopg.connect(conninfo, autocommit=True, connect_timeout=5) as conn:
        for table, (key, stable) in TABLES.items():
            where = bounds[table] if bounds else _bound(conn, table, key, stable)
            fixed[table] = where
            row = conn.execute(
                f"SELECT count(*), coalesce(md5(string_agg(t::text, '|' ORDER BY {key})), '') "
                f"FROM {table} t WHERE {where}"
            ).fetchone()
            assert row is not None  # an aggregate always returns one row
            counts[table], sums[table] = int(row[0]), str(row[1])
    return IntegritySnapshot(counts, sums, fixed)


def _bound(conn: object, table: str, key: str, stable: str) -> str:
    """Freeze the row set at snapshot time, so rows added or finished later are not compared."""
    first = key.split(",")[0].strip()
    if first == "series_id":
        return stable
    if table == "runs":  # a run may finish during the drill: compare only those finished now
        ids = conn.execute(  # type: ignore[attr-defined]
            f"SELECT coalesce(string_agg(run_id::text, ',' ORDER BY run_id), '') "
            f"FROM runs WHERE {stable}"
        ).fetchone()[0]
        return f"run_id IN ({ids})" if ids else "FALSE"
    top = conn.execute(f"SELECT max({first}) FROM {table}").fetchone()[0]  # type: ignore[attr-defined]
    return "FALSE" if top is None else f"{first} <= {int(top)}"
