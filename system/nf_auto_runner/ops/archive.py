"""Monthly archive (runbook §3.3.3) done so nothing is lost.

In ONE transaction: lock the completed/failed runs that ended before the cutoff, read them
with their models and metrics, write a gzip CSV, re-read the file and check its checksum,
delete exactly those rows children-first, and commit only if every deleted count equals the
exported count. Any mismatch rolls back and removes the file.

CSV columns: table, key, row (the row as JSON). The checksum is SHA-256 over the exported
rows in file order, so it can be recomputed from the file alone.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from nf_auto_runner.config import Settings
from nf_auto_runner.db import connect

__all__ = ["ArchiveError", "archive", "file_checksum"]

#: table -> primary key, in export order; deletion runs in the reverse order (FK-safe).
TABLES = (("runs", "run_id"), ("models", "model_id"), ("metrics", "metric_id"))


class ArchiveError(Exception):
    """The archive did not verify; nothing was deleted."""


def _line(table: str, key: Any, row: dict[str, Any]) -> list[str]:
    return [table, str(key), json.dumps(row, default=str, sort_keys=True)]


def _digest(lines: list[list[str]]) -> str:
    h = hashlib.sha256()
    for line in lines:
        h.update("\x1f".join(line).encode())
        h.update(b"\n")
    return h.hexdigest()


def file_checksum(path: Path) -> tuple[str, dict[str, int]]:
    """Checksum and per-table counts recomputed from an archive file."""
    with gzip.open(path, "rt", newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header != ["table", "key", "row"]:
            raise ArchiveError(f"{path} is not an nf_auto_runner archive (header {header})")
        lines = list(reader)
    counts: dict[str, int] = {t: 0 for t, _ in TABLES}
    for line in lines:
        counts[line[0]] = counts.get(line[0], 0) + 1
    return _digest(lines), counts


def archive(settings: Settings, older_than_days: int, out_dir: Path) -> dict[str, Any]:
    """Export-then-delete finished runs older than the cutoff, verified, atomically."""
    cutoff = datetime.now(UTC) - timedelta(days=older_than_days)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"runs_archive_{datetime.now(UTC):%Y%m%dT%H%M%SZ}.csv.gz"
    with connect(settings.database_url) as conn, conn.transaction():
        ids = [
            r["run_id"]
            for r in conn.execute(
                "SELECT run_id FROM runs WHERE status IN ('completed', 'failed') AND end_time < %s "
                "ORDER BY run_id FOR UPDATE",
                (cutoff,),
            )
        ]
        summary: dict[str, Any] = {
            "cutoff": cutoff.isoformat(),
            "file": None,
            "sha256": None,
            "exported": {t: 0 for t, _ in TABLES},
            "deleted": {t: 0 for t, _ in TABLES},
            "run_ids": [],
        }
        if not ids:
            return summary
        lines: list[list[str]] = []
        exported: dict[str, int] = {}
        for table, key in TABLES:
            # the locked run set also locks its children against concurrent inserts
            rows = conn.execute(
                f"SELECT * FROM {table} WHERE run_id = ANY(%s) ORDER BY {key} FOR UPDATE", (ids,)
            ).fetchall()
            exported[table] = len(rows)
            lines.extend(_line(table, r[key], r) for r in rows)
        checksum = _digest(lines)
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(["table", "key", "row"])
        writer.writerows(lines)
        tmp = path.with_name(path.name + ".part")
        with gzip.open(tmp, "wt", encoding="utf-8", newline="") as fh:
            fh.write(buf.getvalue())
        tmp.replace(path)
        try:
            again, counts = file_checksum(path)
            if again != checksum or counts != exported:
                raise ArchiveError(
                    f"archive file {path} does not match the exported rows "
                    f"(checksum {again[:12]} vs {checksum[:12]}); nothing deleted"
                )
            deleted: dict[str, int] = {}
            for table, _ in reversed(TABLES):
                cur = conn.execute(f"DELETE FROM {table} WHERE run_id = ANY(%s)", (ids,))
                deleted[table] = cur.rowcount
            if deleted != exported:
                raise ArchiveError(
                    f"deleted {deleted} but exported {exported}; rolled back, nothing deleted"
                )
        except BaseException:
            path.unlink(missing_ok=True)
            raise  # the transaction rolls back
        summary.update(
            file=str(path), sha256=checksum, exported=exported, deleted=deleted, run_ids=ids
        )
    return summary
