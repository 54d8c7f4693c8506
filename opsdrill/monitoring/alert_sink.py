"""`python -m opsdrill.monitoring.alert_sink --port N --file F`: the webhook receiver
Alertmanager pages.

An alert seen firing in Prometheus is only half of detection: nobody is paged until
Alertmanager delivers it. The embedded stack runs this sink as its receiver (service
`alert_sink`), so a drill can see each notification arrive, firing and then resolved.

  POST /alerts    an Alertmanager webhook notification (JSON); appended to F as one JSON line
                  {"received_at": <unix time>, "notification": {...}}; answers 200
  GET  /received  every line of F so far, as one JSON list (drills read this, not the file)
  GET  /-/ready   200 once listening

Loopback only; standard library only, so it starts in a fraction of a second.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import threading
import time
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

__all__ = ["main", "make_server", "read_lines"]

MAX_BODY = 4 * 2**20


def read_lines(path: Path) -> list[dict[str, object]]:
    """The notifications recorded in `path` (a torn last line, mid-write, is skipped)."""
    out = []
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    for line in text.splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def make_server(host: str, port: int, path: Path) -> ThreadingHTTPServer:
    """A server recording every webhook POST to `path`, one JSON line each."""
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def _answer(self, code: int, body: object) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:  # http.server names the handlers
            length = int(self.headers.get("Content-Length") or 0)
            if not 0 < length <= MAX_BODY:
                return self._answer(400, {"error": f"body of {length} bytes; expected JSON"})
            try:
                notification = json.loads(self.rfile.read(length))
            except json.JSONDecodeError as exc:
                return self._answer(400, {"error": f"body is not JSON: {exc}"})
            line = json.dumps({"received_at": time.time(), "notification": notification})
            with lock, path.open("a") as fh:
                fh.write(line + "\n")
            return self._answer(200, {"status": "recorded"})

        def do_GET(self) -> None:
            if self.path == "/received":
                return self._answer(200, read_lines(path))
            if self.path in ("/-/ready", "/-/healthy"):
                return self._answer(200, {"status": "ready"})
            return self._answer(404, {"error": f"no {self.path}; try /received"})

        def log_message(self, format: str, *args: object) -> None:
            sys.stderr.write(f"alert_sink: {format % args}\n")

    path.parent.mkdir(parents=True, exist_ok=True)
    return ThreadingHTTPServer((host, port), Handler)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m opsdrill.monitoring.alert_sink", description=__doc__
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--file", type=Path, required=True, help="JSON lines file to append to")
    args = parser.parse_args(argv)
    try:
        server = make_server(args.host, args.port, args.file)
    except OSError as exc:
        print(f"alert_sink: cannot listen on {args.host}:{args.port}: {exc.strerror}; "
              "choose a free port", file=sys.stderr)  # fmt: skip
        return 3
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
