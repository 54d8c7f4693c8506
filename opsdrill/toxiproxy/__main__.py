"""`python -m opsdrill.toxiproxy --host 127.0.0.1 --port 8474`: a stand-in toxiproxy-server."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from opsdrill.errors import OpsdrillError
from opsdrill.toxiproxy.api import TOXIPROXY_VERSION
from opsdrill.toxiproxy.errors import ApiError
from opsdrill.toxiproxy.server import ApiServer

PROG = "python -m opsdrill.toxiproxy"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Toxiproxy-compatible HTTP API and TCP proxies, loopback only "
        f"(API of toxiproxy {TOXIPROXY_VERSION}).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="API host (loopback only)")
    parser.add_argument("--port", type=int, default=8474, help="API port (0: any free port)")
    parser.add_argument("--config", type=Path, help="JSON file of proxies to populate at start")
    parser.add_argument("--seed", type=int, help="seed for jitter, toxicity and slicing")
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    server = ApiServer(args.host, args.port, args.seed)
    await server.start()
    if args.config is not None:
        try:
            _done, error = await server.proxies.populate(json.loads(args.config.read_text()))
        except ApiError as exc:
            error = exc
        if error is not None:
            await server.close()
            raise OpsdrillError(f"{args.config}: {error.message}")
    print(f"toxiproxy API listening on {server.url}", flush=True)
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopped.set)
    try:
        await stopped.wait()
    finally:
        await server.close()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        asyncio.run(serve(args))
    except (OpsdrillError, OSError, ValueError) as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, ValueError) else 1
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
