"""Commands where a container's service runs, through the Engine API: `docker exec` bounded
in the container, a one-off container for a stopped service (as `docker compose run --rm`),
and a detached process whose pid is read back.

Every command is bounded by coreutils' `timeout` in the container (exit 124), so a hung one
never outlives its caller's deadline there.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping
from typing import Any

from opsdrill.polling import poll
from opsdrill.targets.docker.sdk import docker
from opsdrill.targets.model import ExecResult

__all__ = ["run_detached", "run_in", "run_oneoff"]


def _bounded(argv: tuple[str, ...], timeout: float) -> list[str]:
    return ["timeout", "-k", "5", f"{timeout:g}", *argv]


def run_in(
    container: Any,
    argv: tuple[str, ...],
    *,
    timeout: float,
    user: str | None,
    env: Mapping[str, str] | None,
) -> ExecResult:
    """`docker exec` in a running container, as its image's user unless `user` says."""
    try:
        code, (out, err) = container.exec_run(
            _bounded(argv, timeout), user=user or "", environment=dict(env or {}), demux=True
        )
    except docker.errors.APIError as exc:
        return ExecResult(argv, 126, "", f"docker exec in {container.name}: {exc.explanation}")
    text = ((out or b"").decode(errors="replace"), (err or b"").decode(errors="replace"))
    if code == 124:
        return ExecResult(argv, 124, text[0], f"timed out after {timeout:.0f} s")
    return ExecResult(argv, int(code), *text)


def run_oneoff(
    client: Any,
    container: Any,
    argv: tuple[str, ...],
    *,
    timeout: float,
    user: str | None,
    env: Mapping[str, str] | None,
) -> ExecResult:
    """A command for a stopped service, as `docker compose run --rm` runs one: a container
    of the same image, environment, volumes (so the config it refuses to start on, and its
    data) and network (the ops CLI restoring a backup while the api is stopped reaches the
    db as the api does), removed afterwards."""
    config = container.attrs["Config"]
    try:
        oneoff = client.containers.run(
            config["Image"], _bounded(argv, timeout), entrypoint=[],
            user=user or config.get("User") or "",
            environment=[*(config.get("Env") or []), *(f"{k}={v}" for k, v in
                                                       (env or {}).items())],
            working_dir=config.get("WorkingDir") or None,
            volumes_from=[container.id], detach=True,
            network_mode=container.attrs["HostConfig"].get("NetworkMode") or "none",
            labels={"opsdrill.oneoff": container.name},
        )  # fmt: skip
    except docker.errors.APIError as exc:
        return ExecResult(argv, 126, "", f"docker run for {container.name}: {exc.explanation}")
    try:
        code = int(oneoff.wait(timeout=timeout + 30)["StatusCode"])
        out = oneoff.logs(stdout=True, stderr=False).decode(errors="replace")
        err = oneoff.logs(stdout=False, stderr=True).decode(errors="replace")
    except (docker.errors.APIError, OSError) as exc:  # requests' timeouts are OSErrors
        return ExecResult(argv, 124, "", f"{argv[0]} for {container.name}: {exc}")
    finally:
        with contextlib.suppress(docker.errors.APIError):
            oneoff.remove(force=True)
    if code == 124:
        return ExecResult(argv, 124, out, f"timed out after {timeout:.0f} s")
    return ExecResult(argv, code, out, err)


def run_detached(
    container: Any,
    argv: tuple[str, ...],
    *,
    user: str | None,
    env: Mapping[str, str] | None,
) -> ExecResult:
    """A detached exec of its own: the process is the exec's (its parent outside the
    container), never an orphan adopted by the container's main process, so `top` there
    does not take it for one of the app's children. Its pid, in the container's pid
    namespace, is written by the shell that then becomes it, and read back (stdout)."""
    marker = f"/tmp/.opsdrill-exec-{time.monotonic_ns()}.pid"
    script = 'echo $$ > "$0" && exec "$@" >/dev/null 2>&1 </dev/null'
    try:
        container.exec_run(["sh", "-c", script, marker, *argv], user=user or "",
                           environment=dict(env or {}), detach=True)  # fmt: skip
    except docker.errors.APIError as exc:
        return ExecResult(argv, 126, "", f"docker exec in {container.name}: {exc.explanation}")

    def pid() -> str | None:
        done = run_in(container, ("sh", "-c", 'cat "$0" && rm -f "$0"', marker), timeout=10,
                      user=None, env=None)  # fmt: skip
        return done.stdout.strip() if done.ok and done.stdout.strip().isdigit() else None

    if (started := poll(pid, 10.0, interval=0.1)) is None:
        return ExecResult(argv, 1, "", f"{argv[0]} did not start in {container.name}")
    return ExecResult(argv, 0, started, "")
