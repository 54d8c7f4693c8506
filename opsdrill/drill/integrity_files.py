"""The integrity oracle's file checksums where the files are: read here when the model and
backup directories are readable on this machine, else by one command where the app runs
(`Target.exec`: a container, a host over ssh), with the same labels either way.

Labels: "model file <path>" for a model that is one file, "model file <path>/<relative>" for
each file under a model directory, "model file <path>" = "absent" for one with no files, and
"newest backup <name>" for the newest `full_*.dump.gz` (or, after the drill, the one the
snapshot before covered, wherever it is now).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

__all__ = ["RemoteRun", "local_sums", "remote_sums", "sha256", "under"]

#: runs argv where the app runs; what came back (an ExecResult: ok, stdout, output())
RemoteRun = Callable[[Sequence[str]], Any]

#: `sh -c SUMS sh BACKUPS NEWEST ROOT...`: "sha256  path" for every file under each ROOT (or
#: the ROOT file), "- ROOT" for a ROOT with no files; then the backup NEWEST names (or the
#: newest full_*.dump.gz in BACKUPS when NEWEST is empty) as "sha256  path", "- none" without
SUMS = r"""
backups=$1 newest=$2; shift 2
for root in "$@"; do
  if [ -f "$root" ]; then sha256sum "$root"
  elif [ -d "$root" ] && [ -n "$(find "$root" -type f -print -quit)" ]; then
    find "$root" -type f -print0 | sort -z | xargs -0 sha256sum
  else printf -- '- %s\n' "$root"; fi
done
if [ -z "$newest" ]; then
  newest=$(ls -t "$backups"/full_*.dump.gz 2>/dev/null | head -n 1)
  newest=${newest##*/}
fi
if [ -n "$newest" ] && [ -f "$backups/$newest" ]; then sha256sum "$backups/$newest"
else echo "- none"; fi
"""


def under(models_dir: PurePosixPath | Path, path: str) -> PurePosixPath:
    """The model's path as read through `models_dir` (absolute paths from the app's view)."""
    p = PurePosixPath(path)
    if p.is_absolute():
        parts = p.parts
        name = PurePosixPath(models_dir).name
        if name in parts:  # …/models/<id> → models_dir/<id>
            return PurePosixPath(models_dir).joinpath(
                *parts[len(parts) - parts[::-1].index(name) :]
            )
        return p
    return PurePosixPath(models_dir) / p


def local_sums(models_dir: Path, paths: Sequence[str]) -> dict[str, str]:
    """Model files read on this machine."""
    files: dict[str, str] = {}
    for path in paths:
        files.update(_hash_tree(Path(under(models_dir, path)), f"model file {path}"))
    return files


def remote_sums(
    run: RemoteRun,
    models_dir: PurePosixPath,
    paths: Sequence[str],
    backups_dir: PurePosixPath | None,
    newest: str | None,
) -> tuple[dict[str, str], str | None]:
    """Model files and the newest backup read by one command where the app runs; (sums, the
    reason none could be read). `newest`: the backup name the snapshot before covered."""
    roots = {str(under(models_dir, p)): p for p in paths}
    done = run(["sh", "-c", SUMS, "sh", str(backups_dir or "/nonexistent"), newest or "",
                *roots])  # fmt: skip
    if not done.ok:
        return {}, f"files not readable where the app runs: {done.output(200)}"
    files: dict[str, str] = {}
    lines = done.stdout.splitlines()
    *model_lines, backup_line = lines or ["- none"]
    for line in model_lines:
        if line.startswith("- "):
            files[f"model file {roots.get(line[2:], line[2:])}"] = "absent"
            continue
        digest, _, where = line.partition("  ")
        root = next((r for r in roots if where == r or where.startswith(r.rstrip("/") + "/")), None)
        if root is None:
            continue
        label = f"model file {roots[root]}"
        rel = where[len(root) :].lstrip("/")
        files[f"{label}/{rel}" if rel else label] = digest
    if backups_dir is not None and not backup_line.startswith("- "):
        digest, _, where = backup_line.partition("  ")
        files[f"newest backup {PurePosixPath(where).name}"] = digest
    return files, None


def _hash_tree(root: Path, label: str) -> dict[str, str]:
    if root.is_file():
        return {label: sha256(root)}
    files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else []
    if not files:
        return {label: "absent"}
    return {f"{label}/{p.relative_to(root)}": sha256(p) for p in files}


def sha256(path: Path) -> str:
    """The file's sha256, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
