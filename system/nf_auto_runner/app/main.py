"""`python -m nf_auto_runner.app.main`: validate config, migrate, then serve with uvicorn.

A broken config file or an unreachable database ends start-up with one line saying what is
wrong and a non-zero exit, which is what runbook §5.2.1 diagnoses; so does a port already in
use (the socket is bound before anything else starts). The pid file is written after those
checks and removed on a clean exit.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import socket
import sys
import time

from nf_auto_runner import config
from nf_auto_runner.config import ConfigError, Settings

__all__ = ["main"]

log = logging.getLogger("nf_auto_runner.app")

EXIT_CONFIG = 2
EXIT_DATABASE = 3
EXIT_RUNNING = 4
EXIT_PORT = 5


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m nf_auto_runner.app.main",
        description="Serve the nf_auto_runner forecasting API.",
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument(
        "--check-config",
        action="store_true",
        help="validate the config file and environment, print 'config OK', exit",
    )
    return p.parse_args(argv)


def _listen(host: str, port: int) -> socket.socket:
    """Bind before doing anything else: a taken port is refused at once, in one line."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto must be IPPROTO_TCP, not 0: asyncio only sets TCP_NODELAY on accepted sockets
    # whose proto says TCP, and without it keep-alive responses wait ~40 ms (Nagle + ACK)
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    return sock


def _migrate_with_wait(settings: Settings) -> None:
    from nf_auto_runner.db import DatabaseUnavailable
    from nf_auto_runner.migrate import migrate

    deadline = time.monotonic() + settings.startup_db_wait_seconds
    while True:
        try:
            applied = migrate(settings.database_url)
            if applied:
                log.info("migrations applied: %s", ", ".join(applied))
            return
        except DatabaseUnavailable:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.5)


def _claim_pid_file(settings: Settings) -> None:
    path = settings.pid_file
    with contextlib.suppress(FileNotFoundError, ValueError):
        pid = int(path.read_text().strip())
        if pid != os.getpid() and _is_app(pid):
            print(
                f"error: nf_auto_runner already running with pid {pid} ({path}); stop it "
                f"first or remove the pid file if that process is not the app",
                file=sys.stderr,
            )
            sys.exit(EXIT_RUNNING)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(f"{os.getpid()}\n")
    tmp.replace(path)


def _is_app(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return b"nf_auto_runner.app.main" in fh.read()
    except OSError:
        return False


def _stopped_by(signum: int, frame: object) -> None:
    log.info("stopped by %s", signal.Signals(signum).name)


def _release_pid_file(settings: Settings) -> None:
    with contextlib.suppress(FileNotFoundError, ValueError):
        if int(settings.pid_file.read_text().strip()) == os.getpid():
            settings.pid_file.unlink()


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    try:
        settings = config.load()
        config.ensure_dirs(settings)
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    no_key = (
        "warning: NF_API_KEY is not set: every request that needs X-API-Key will be "
        "refused with 401; set it in the environment or config"
    )
    if args.check_config:
        print("config OK")
        if not settings.api_key:
            print(no_key, file=sys.stderr)
        return 0
    from nf_auto_runner.db import DatabaseUnavailable
    from nf_auto_runner.logs import setup_logging

    try:
        sock = _listen(args.host, args.port)
    except OSError as exc:
        print(
            f"error: cannot listen on {args.host}:{args.port}: "
            f"{(exc.strerror or str(exc)).lower()}; stop the process holding the port "
            f"(ss -ltnp 'sport = :{args.port}') or choose another --port",
            file=sys.stderr,
        )
        return EXIT_PORT
    handler = setup_logging(settings)
    if not settings.api_key:
        log.warning(no_key)
    try:
        _migrate_with_wait(settings)
    except DatabaseUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        log.critical("start-up failed: %s", exc)
        return EXIT_DATABASE
    _claim_pid_file(settings)
    try:
        import uvicorn
        from nf_auto_runner.app.application import create_app

        server = uvicorn.Server(
            uvicorn.Config(
                create_app(settings),
                host=args.host,
                port=args.port,
                log_config=None,
                access_log=False,
                lifespan="on",
                timeout_graceful_shutdown=10,
            )
        )
        # uvicorn re-raises SIGTERM/SIGINT after its graceful shutdown; with these handlers
        # in place that re-raise is a no-op, so a requested stop is a clean exit (status 0)
        # and the finally below still removes the pid file.
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, _stopped_by)
        server.run(sockets=[sock])
        return 0 if server.started else 1
    finally:
        _release_pid_file(settings)
        if handler is not None:
            handler.close()


if __name__ == "__main__":
    sys.exit(main())
