"""Nothing committed is lost: every table, the model files and the newest backup, checksummed
before the fault and after recovery.

Rows: every base table of the schema, found in the catalog (so a new table is covered without
a code change), each row keyed by its primary key. A row that existed at the snapshot must
still exist with the same contents; new rows are allowed. Runs that were `scheduled` or
`running` at the snapshot may legitimately move on (status, times, worker, error), so only
their committed fields — what was submitted — are compared.

Files: the sha256 of every file under each path the `models` table references (read through
the target's `models_dir`), and of the newest `full_*.dump.gz` in its `backups_dir`; read on
this machine where they are readable, else where the app runs (integrity_files). A file
referenced at the snapshot must still be there, unchanged.

A restore from a backup loses, by design, what was committed after the backup: its recovery
point. Given what the backup holds (`recovery_point`), a row missing after the drill that the
backup lacks too, or one altered back to the backup's copy, is that window's loss: reported
with its count, not a failure. A row the backup holds and the database lost still fails.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import psycopg
from psycopg import sql

from opsdrill.drill.integrity_files import RemoteRun, local_sums, remote_sums, sha256

__all__ = ["Audit", "IntegritySnapshot", "RowSum", "take_snapshot"]

#: runs columns that say whether a run's copy in MLflow is made yet: the executor's sweep
#: fills them in after the run finished (at once, or once MLflow is back), so they may move
#: on any run; the run's own data is the rest
RUN_TRACKING = ("mlflow_run_id", "tracking_status", "tracking_error")
#: runs columns that change as a run proceeds; the rest was committed at submission
RUN_PROGRESS = ("status", "start_time", "end_time", "execution_duration_seconds",
                "worker_host", "worker_pid", "heartbeat_at", "error_message",
                *RUN_TRACKING)  # fmt: skip
UNFINISHED = ("scheduled", "running")
SHOWN = 5  # keys named per problem
NEWEST = "newest backup "  # the label of the newest backup's checksum


@dataclass(frozen=True)
class RowSum:
    full: str  # md5 of the whole row
    committed: str  # md5 of the fields that may not change (the whole row but for runs)
    unfinished: bool  # a run scheduled or running: only `committed` must survive

    def survives_as(self, after: RowSum) -> bool:
        return self.committed == after.committed if self.unfinished else self.full == after.full


@dataclass(frozen=True)
class IntegritySnapshot:
    #: table -> {primary key as text: checksums of the row}
    rows: dict[str, dict[str, RowSum]]
    #: label ("model file <path>", "newest backup <name>") -> sha256
    files: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # what could not be covered, and why

    @property
    def counts(self) -> dict[str, int]:
        return {table: len(rows) for table, rows in self.rows.items()}

    def compare(
        self, after: IntegritySnapshot, recovery_point: IntegritySnapshot | None = None
    ) -> list[str]:
        """Differences as sentences naming the table and keys, or the file; empty when none."""
        return self.audit(after, recovery_point).problems

    def audit(
        self, after: IntegritySnapshot, recovery_point: IntegritySnapshot | None = None
    ) -> Audit:
        """Losses and changes since this snapshot; with `recovery_point` (what a restored
        backup holds), those the restore explains are counted apart as the window's loss."""
        audit = Audit()
        for table, rows in self.rows.items():
            now = after.rows.get(table, {})
            point = recovery_point.rows.get(table, {}) if recovery_point is not None else None
            missing = [k for k in rows if k not in now]
            changed = [k for k in rows if k in now and not rows[k].survives_as(now[k])]
            if point is not None:
                # missing here and in the backup: written after it; altered back to its copy
                window = [k for k in missing if k not in point]
                window += [k for k in changed if k in point and point[k].full == now[k].full]
                missing = [k for k in missing if k in point]
                changed = [k for k in changed if k not in window]
                if window:
                    audit.window[table] = window
            if missing:
                audit.problems.append(f"{table}: {len(missing)} committed row(s) missing after "
                                      f"the drill ({_keys(missing)})")  # fmt: skip
            if changed:
                audit.problems.append(f"{table}: {len(changed)} committed row(s) altered "
                                      f"({_keys(changed)})")  # fmt: skip
        for label, digest in self.files.items():
            if label not in after.files:
                audit.problems.append(f"{label}: missing after the drill")
            elif after.files[label] != digest:
                audit.problems.append(f"{label}: contents changed (sha256 differs)")
        return audit


@dataclass
class Audit:
    problems: list[str] = field(default_factory=list)  # losses nothing explains: a failure
    #: table -> keys committed after the recovery point and lost (or reverted) by the restore
    window: dict[str, list[str]] = field(default_factory=dict)

    def window_note(self) -> str | None:
        """One sentence on what the restore's recovery point cost, or None when nothing."""
        if not self.window:
            return None
        total = sum(len(keys) for keys in self.window.values())
        tables = ", ".join(f"{t}: {len(k)} ({_keys(k)})" for t, k in self.window.items())
        return (f"{total} row(s) committed after the recovery point (the backup) were lost or "
                f"reverted by the restore, as the procedure accepts: {tables}")  # fmt: skip


def _keys(keys: list[str]) -> str:
    more = f", … {len(keys) - SHOWN} more" if len(keys) > SHOWN else ""
    return ", ".join(keys[:SHOWN]) + more


def take_snapshot(
    conninfo: str,
    models_dir: Path | None = None,
    backups_dir: Path | None = None,
    before: IntegritySnapshot | None = None,
    run: RemoteRun | None = None,
) -> IntegritySnapshot:
    """Checksum every table's rows, the model files and the newest backup. With `before`,
    the files looked at are the ones `before` covered (the newest backup then, not now).
    Files not readable here are read by `run` where the app runs (`Target.exec`)."""
    notes: list[str] = []
    with psycopg.connect(conninfo, autocommit=True, connect_timeout=5) as conn:
        rows = {table: _rows(conn, table, key) for table, key in _tables(conn).items()}
        paths = [str(p) for (p,) in conn.execute("SELECT path FROM models ORDER BY model_id")]
    files: dict[str, str] = {}
    if models_dir is not None and models_dir.is_dir():
        files.update(local_sums(models_dir, paths))
        files.update(_newest_backup(backups_dir, before, notes))
    elif models_dir is not None and run is not None:
        covered = [k for k in (before.files if before else {}) if k.startswith(NEWEST)]
        newest = covered[0].removeprefix(NEWEST) if covered else None
        backups = PurePosixPath(backups_dir) if backups_dir is not None else None
        sums, problem = remote_sums(run, PurePosixPath(models_dir), paths, backups, newest)
        files.update(sums)
        if problem:
            notes.append(f"model files and backups not checked: {problem}")
        elif before is None and backups is not None and not any(k.startswith(NEWEST) for k in sums):
            notes.append(f"no full_*.dump.gz in {backups} where the app runs: the newest "
                         "backup not checked")  # fmt: skip
    else:
        notes.append(f"model files not checked: models_dir {models_dir} not readable here")
        files.update(_newest_backup(backups_dir, before, notes))
    return IntegritySnapshot(rows, files, notes)


def _tables(conn: Any) -> dict[str, str]:
    """Every base table of the public schema -> its primary key as a SQL expression."""
    found = conn.execute(
        "SELECT c.relname, string_agg(quote_ident(a.attname), ', ' ORDER BY k.ord) "
        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "LEFT JOIN pg_index i ON i.indrelid = c.oid AND i.indisprimary "
        "LEFT JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) ON TRUE "
        "LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum "
        "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') GROUP BY c.relname "
        "ORDER BY c.relname"
    ).fetchall()
    # a table without a primary key is keyed by its whole row: loss still shows, change too
    return {str(name): str(key) if key else "t.*" for name, key in found}


def _rows(conn: Any, table: str, key: str) -> dict[str, RowSum]:
    full: sql.Composable
    committed: sql.Composable
    unfinished: sql.Composable
    if table == "runs":  # what was committed at submission, and whether it was unfinished
        drop = sql.SQL(" - ").join(sql.Literal(c) for c in RUN_PROGRESS)
        tracking = sql.SQL(" - ").join(sql.Literal(c) for c in RUN_TRACKING)
        states = sql.SQL(", ").join(sql.Literal(s) for s in UNFINISHED)
        full = sql.SQL("to_jsonb(t) - {}").format(tracking)
        committed = sql.SQL("to_jsonb(t) - {}").format(drop)
        unfinished = sql.SQL("t.status IN ({})").format(states)
    else:
        full = committed = sql.SQL("to_jsonb(t)")
        unfinished = sql.SQL("false")
    columns = key if key == "t.*" else ", ".join(f"t.{c}" for c in key.split(", "))
    query = sql.SQL(
        "SELECT ({k})::text, md5(({f})::text), md5(({c})::text), {u} FROM {t} t"
    ).format(k=sql.SQL(columns), f=full, c=committed, u=unfinished, t=sql.Identifier(table))
    return {
        _label(key, str(k)): RowSum(str(full), str(part), bool(open_))
        for k, full, part, open_ in conn.execute(query)
    }


def _label(key: str, value: str) -> str:
    return f"({key})={value}" if ", " in key else f"{key}={value.strip('()')}"


def _newest_backup(
    backups_dir: Path | None, before: IntegritySnapshot | None, notes: list[str]
) -> Mapping[str, str]:
    if before is not None:  # the same file as at the snapshot, wherever it is now
        labels = [k for k in before.files if k.startswith(NEWEST)]
        if backups_dir is None:
            return {}
        return {lb: sha256(f) for lb in labels
                if (f := backups_dir / lb.removeprefix(NEWEST)).is_file()}  # fmt: skip
    found = (
        sorted(backups_dir.glob("full_*.dump.gz")) if backups_dir and backups_dir.is_dir() else []
    )
    if not found:
        notes.append(f"no full_*.dump.gz in {backups_dir}: the newest backup not checked")
        return {}
    newest = max(found, key=lambda p: (p.stat().st_mtime, p.name))
    return {f"{NEWEST}{newest.name}": sha256(newest)}
