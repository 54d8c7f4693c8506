"""Runbook §3.3.1 (capacity), §3.3.2 (security review) and §3.3.3 (archive, sandbox only).

The archive check fixes the runbook's defect (export and delete as unrelated steps): it
archives runs it planted, then proves the rows deleted are exactly the rows exported, that the
file's checksum is the one reported, and that nothing else was touched.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import re
import shlex
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest

from opsdrill.runbook import queries
from opsdrill.runbook.thresholds import evaluate
from opsdrill.targets.base import Target
from opsdrill.targets.files import ServiceFiles

pytestmark = pytest.mark.readonly  # the few that write are marked sandbox, which wins

SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|API_KEY|PRIVATE|CREDENTIAL|DATABASE_URL|DSN", re.I)
TLS_WARNING_DAYS = 30


@pytest.mark.runbook("3.3.1")
def test_capacity_figures(read) -> None:
    months = read(queries.CAPACITY_BY_MONTH)
    total = read("SELECT count(*) AS n FROM runs WHERE created_at >= "
                 "date_trunc('month', now()) - interval '5 months'")[0]["n"]  # fmt: skip
    storage = read(queries.MODEL_STORAGE)[0]
    size = read(queries.DATABASE_SIZE)[0]["bytes"]
    assert sum(m["created"] for m in months) == total, f"monthly counts {months} != {total}"
    assert size > 0, f"database size {size}"
    assert storage["models"] == 0 or storage["bytes"] > 0, (
        f"{storage['models']} models recorded with a total size of 0 bytes; fix: the trainer "
        "must record model_size_bytes"
    )


@pytest.mark.runbook("3.3.1")
def test_recorded_models_exist_on_disk(read, host: object) -> None:
    """Model storage counted from the database is only true if the files are there."""
    rows = read("SELECT model_id, path FROM models ORDER BY model_id DESC LIMIT 200")
    missing = [f"model {r['model_id']}: {r['path']}" for r in rows
               if not host.file(r["path"]).exists]  # fmt: skip
    assert not missing, (
        f"{len(missing)} model(s) recorded in the database have no files (expected all "
        f"present): {'; '.join(missing[:5])}; fix: restore them from backup or retrain"
    )


@pytest.mark.runbook("3.3.1")
def test_model_storage_matches_the_files(read, host: object) -> None:
    """The review's model storage is SUM(model_size_bytes): a figure only if each recorded
    size is what the model's files hold on disk (leftover checkpoints grow storage unseen)."""
    rows = read("SELECT model_id, path, model_size_bytes FROM models ORDER BY model_id DESC "
                "LIMIT 200")  # fmt: skip
    if not rows:
        return
    paths = " ".join(shlex.quote(r["path"]) for r in rows)
    listing = host.run(f"find {paths} -type f -printf '%s %p\\n' 2>/dev/null").stdout
    files = [line.split(" ", 1) for line in listing.splitlines() if " " in line]
    bad = []
    for r in rows:
        prefix = r["path"].rstrip("/")
        on_disk = sum(int(size) for size, name in files
                      if name == prefix or name.startswith(prefix + "/"))  # fmt: skip
        recorded = r["model_size_bytes"]
        if on_disk and (recorded is None or abs(on_disk - recorded) > max(1024, recorded / 100)):
            bad.append(f"model {r['model_id']} ({r['path']}): recorded {recorded}, on disk "
                       f"{on_disk} bytes")  # fmt: skip
    assert not bad, (
        f"{len(bad)} model(s) whose recorded size differs from their files (expected within "
        f"1 %): {'; '.join(bad[:5])}; fix: remove stray files from the model directories, "
        "or correct model_size_bytes, so the capacity review counts what is stored"
    )


@pytest.mark.runbook("3.3.2")
def test_secrets_are_not_on_command_lines(machine: Target) -> None:
    """Secrets belong in the environment (named here, never shown), not in `ps` output."""
    host = machine.testinfra_host()
    pid = machine.service("api").pid() if "api" in machine.services else None
    if pid is None:
        pytest.skip("the API's pid is unknown here: cannot read its environment")
    environ = host.run(f"cat /proc/{pid}/environ | tr '\\0' '\\n'").stdout.splitlines()
    secrets = dict(line.split("=", 1) for line in environ if "=" in line)
    secrets = {k: v for k, v in secrets.items() if SECRET_NAME.search(k) and len(v) >= 8}
    print(f"secrets in the API's environment (names only): {', '.join(sorted(secrets))}")
    args = host.run("ps -eo args=").stdout
    leaked = sorted(name for name, value in secrets.items() if value in args)
    assert not leaked, (
        f"the value of {', '.join(leaked)} appears on a process command line, readable by "
        "every user through ps (expected only in the environment); fix: pass it through an "
        "environment variable or a 0600 file"
    )


@pytest.mark.runbook("3.3.2")
def test_no_group_or_world_writable_files(machine: Target) -> None:
    host = machine.testinfra_host()
    home = machine.endpoints.home
    if home is None:
        pytest.skip(f"target {machine.name!r} names no home directory")
    found = host.run(f"find {home} -xdev \\( -type f -o -type d \\) -perm /022 "
                     "! -path '*/lost+found' -print").stdout.split()  # fmt: skip
    assert not found, (
        f"{len(found)} group/world-writable path(s) under {home} (expected none): "
        f"{', '.join(found[:10])}; fix: chmod go-w on them and check the service's umask"
    )


@pytest.mark.runbook("3.3.2")
def test_failed_logins_per_day_below_threshold(read) -> None:
    """opsdrill's own refused probes (test_security.py) are counted apart, not as attacks."""
    bad = [evaluate("failed_logins_per_day", r["n"] - r["probes"],
                    f"{r['day']} (besides {r['probes']} opsdrill probes)").message
           for r in read(queries.FAILED_LOGINS_BY_DAY)
           if evaluate("failed_logins_per_day", r["n"] - r["probes"]).level.fails]  # fmt: skip
    assert not bad, "; ".join(bad)


@pytest.mark.runbook("3.3.2")
def test_tls_certificate_is_not_about_to_expire(target: Target) -> None:
    url = urlsplit(target.endpoints.api_url)
    if url.scheme != "https":
        pytest.skip(f"the API is {url.scheme}://, not https: there is no certificate to check")
    ctx = ssl.create_default_context()
    with (
        socket.create_connection((url.hostname, url.port or 443), timeout=5) as sock,
        ctx.wrap_socket(sock, server_hostname=url.hostname) as tls,
    ):
        cert = tls.getpeercert()
    expires = datetime.fromtimestamp(ssl.cert_time_to_seconds(cert["notAfter"]), UTC)
    days = (expires - datetime.now(UTC)).days
    assert days >= TLS_WARNING_DAYS, (
        f"the certificate of {url.hostname} expires in {days} days ({expires:%Y-%m-%d}), "
        f"expected at least {TLS_WARNING_DAYS}; fix: renew it"
    )


@pytest.mark.runbook("3.3.2")
def test_dependencies_have_no_known_vulnerabilities() -> None:
    audit = shutil.which("pip-audit")
    if audit is None:
        pytest.skip("no advisory source: pip-audit is not installed (pip install pip-audit)")
    done = subprocess.run([audit, "--format", "json", "--progress-spinner", "off"],
                          capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    if done.returncode not in (0, 1) or not done.stdout.strip():
        pytest.skip(f"the advisory source is not reachable: {done.stderr.strip()[-200:]}")
    vulns = [f"{d['name']} {d['version']}: {', '.join(v['id'] for v in d['vulns'])}"
             for d in json.loads(done.stdout)["dependencies"] if d.get("vulns")]  # fmt: skip
    assert not vulns, f"vulnerable dependencies: {'; '.join(vulns)}; fix: upgrade them"


ARCHIVED = (("runs", "run_id"), ("models", "model_id"), ("metrics", "metric_id"))
ELIGIBLE = "SELECT run_id FROM runs WHERE status IN ('completed', 'failed') " \
           "AND end_time < now() - make_interval(days => %s)"  # fmt: skip


def _rows(db, run_ids: list[int]) -> dict[tuple[str, str], dict[str, Any]]:
    """(table, primary key) -> row, for the runs and their children, as the database has them."""
    from psycopg.rows import dict_row

    out = {}
    with db.cursor(row_factory=dict_row) as cur:
        for table, key in ARCHIVED:
            for row in cur.execute(f"SELECT * FROM {table} WHERE run_id = ANY(%s)", (run_ids,)):
                out[(table, str(row[key]))] = row
    return out


def _same(db_value: Any, file_value: Any) -> bool:
    """A database value and its archived JSON form are the same value (JSON holds datetimes
    and decimals as text, in whatever time zone the exporting session used)."""
    if db_value is None or file_value is None:
        return db_value is file_value
    if isinstance(db_value, datetime):
        return datetime.fromisoformat(str(file_value)) == db_value
    if isinstance(db_value, Decimal | float | int) and not isinstance(db_value, bool):
        return Decimal(str(file_value)) == Decimal(str(db_value))
    return json.loads(json.dumps(db_value, default=str)) == file_value


def _read_archive(path: str, data: bytes) -> dict[tuple[str, str], dict[str, Any]]:
    text = gzip.decompress(data).decode("utf-8")
    reader = csv.reader(io.StringIO(text, newline=""))
    assert next(reader) == ["table", "key", "row"], f"{path} has no archive header"
    return {(table, key): json.loads(row) for table, key, row in reader}


@pytest.fixture
def archive_dir(target: Target) -> Iterator[tuple[ServiceFiles, PurePosixPath]]:
    """A directory of its own where the ops CLI runs (beside the backups), and the files there
    as the app sees them; it and what the archive left in it are removed afterwards."""
    if "service_files" not in target.capabilities:
        pytest.skip(f"target {target.name!r} cannot read its services' files (service_files)")
    base = target.endpoints.backups_dir or target.endpoints.home
    if base is None:
        pytest.skip(f"target {target.name!r} names no backups_dir or home for the archive")
    files = target.files("api")
    out = PurePosixPath(base) / f"opsdrill-archive-probe-{os.getpid()}-{time.time_ns()}"
    try:
        yield files, out
    finally:
        for path in files.glob(out / "*"):
            files.remove(path)
        files.remove(out)


@pytest.mark.sandbox
@pytest.mark.exclusive  # its planted runs would fail the model-files check running beside it
@pytest.mark.runbook("3.3.3")
def test_archive_exports_exactly_what_it_deletes(
    ops, db, archive_dir: tuple[ServiceFiles, PurePosixPath]
) -> None:
    """Judged by the file read back from where the ops CLI wrote it, row by row, against the
    rows the database held before, and by those rows being gone: never by the archive's own
    summary."""
    files, out = archive_dir
    run_ids = [
        db.execute(
            "INSERT INTO runs (run_name, experiment_id, status, model_name, series_id, horizon,"
            " created_at, start_time, end_time, execution_duration_seconds) SELECT "
            "'opsdrill-archive-probe', experiment_id, %s, 'MLP', 'airpassengers', 12, "
            "now() - interval '200 days', now() - interval '200 days', "
            "now() - interval '200 days' + interval '60 seconds', 60.125 "
            "FROM experiments WHERE experiment_name = 'default' RETURNING run_id", (status,)
        ).fetchone()[0]
        for status in ("completed", "failed")
    ]  # fmt: skip
    for run_id in run_ids:
        db.execute(
            "INSERT INTO models (run_id, model_name, series_id, horizon, path, "
            "training_duration_seconds, model_size_bytes) "
            "VALUES (%s, 'MLP', 'airpassengers', 12, '/nonexistent', 42.5, 1024)",
            (run_id,),
        )
        db.execute("INSERT INTO metrics (run_id, name, value) VALUES (%s, 'mae', 1.25), "
                   "(%s, 'rmse', 2.5)", (run_id, run_id))  # fmt: skip
    try:
        eligible = [r[0] for r in db.execute(ELIGIBLE, (180,))]
        before = _rows(db, eligible)
        done = ops("archive", "--older-than-days", "180", "--out", str(out))
        assert done.returncode == 0, f"archive failed: {done.stderr.strip()}"
        summary = json.loads(done.stdout)
        assert set(run_ids) <= set(summary["run_ids"]), f"{run_ids} not archived: {summary}"
        in_file = _read_archive(summary["file"], files.read_bytes(summary["file"]))
        left = _rows(db, eligible)
        assert not left, f"{len(left)} archived row(s) still in the database: {sorted(left)[:5]}"
        lost = sorted(set(before) - set(in_file))
        extra = sorted(set(in_file) - set(before))
        assert not lost and not extra, (
            f"the archive file does not hold exactly the deleted rows: {len(lost)} deleted "
            f"but not in the file {lost[:5]}, {len(extra)} in the file but never deleted "
            f"{extra[:5]}; fix: export and delete the same locked set (runbook 3.3.3)"
        )
        wrong = [
            f"{table} {key}.{col}: database {row[col]!r}, file {in_file[(table, key)].get(col)!r}"
            for (table, key), row in sorted(before.items())
            for col in row
            if not _same(row[col], in_file[(table, key)].get(col, "<missing>"))
        ]
        assert not wrong, (
            f"{len(wrong)} value(s) in the archive differ from the rows deleted: "
            f"{'; '.join(wrong[:5])}; fix: the archive's export (nothing may be lost)"
        )
    finally:
        db.execute("DELETE FROM metrics WHERE run_id = ANY(%s)", (run_ids,))
        db.execute("DELETE FROM models WHERE run_id = ANY(%s)", (run_ids,))
        db.execute("DELETE FROM runs WHERE run_id = ANY(%s)", (run_ids,))
