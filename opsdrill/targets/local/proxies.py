"""Toxiproxy between the stack's parts: the app -> database hop and the clients -> API hop.

With the proxy opt-in the stack runs its own server (toxiproxy-server where installed, else
`opsdrill.toxiproxy`), or populates the one OPSDRILL_TOXIPROXY_URL names; the app's DSN then
points at the `postgres` proxy, and network faults add toxics to these proxies.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from opsdrill.errors import OpsdrillError, ServiceError
from opsdrill.stack.toxiproxy import ToxiproxyClient
from opsdrill.targets.local.process_service import ProcessSpec
from opsdrill.targets.local.specs import http_spec

__all__ = ["LINKS", "PROXIES", "config", "populate_external", "spec", "through"]

#: Toxiproxy proxy name -> the service it fronts
PROXIES = {"postgres": "db", "api": "api"}
#: the seam's link names (`Target.proxy_for`) -> our proxy names
LINKS = {"app_db": "postgres", "client_api": "api"}

Proxies = list[dict[str, object]]


def config(port: Callable[[str], int]) -> Proxies:
    """The Toxiproxy proxies: `postgres` (app -> database) and `api` (clients -> app)."""
    return [
        {"name": name, "listen": f"127.0.0.1:{port(f'proxy_{name}')}",
         "upstream": f"127.0.0.1:{port(service)}", "enabled": True}
        for name, service in PROXIES.items()
    ]  # fmt: skip


def spec(ports: Callable[[str], int], state_dir: Path) -> ProcessSpec:
    """toxiproxy-server if installed, else the embedded one; proxies come from a file."""
    port = ports("proxy")
    config_file = state_dir / "proxy" / "proxies.json"
    binary = shutil.which("toxiproxy-server")
    if binary:
        argv = [binary, "-host", "127.0.0.1", "-port", str(port), "-config", str(config_file)]
    else:
        argv = [sys.executable, "-m", "opsdrill.toxiproxy", "--host", "127.0.0.1",
                "--port", str(port), "--config", str(config_file)]  # fmt: skip

    def write_config() -> None:
        config_file.parent.mkdir(parents=True, exist_ok=True)
        config_file.write_text(json.dumps(config(ports), indent=2) + "\n")

    return http_spec(argv, port, "/proxies", before_start=write_config)


def populate_external(url: str | None, proxies: Proxies) -> None:
    """With OPSDRILL_TOXIPROXY_URL, create (or replace) our proxies on that server."""
    try:
        ToxiproxyClient(str(url)).populate(proxies)
    except (OpsdrillError, ValueError) as exc:
        raise ServiceError(f"Toxiproxy at {url} refused our proxies: {exc}") from exc


def through(dsn: str, proxy_port: int) -> str:
    """`dsn` with its port swapped for the `postgres` proxy's: the app's link through it."""
    parts = urlsplit(dsn)
    netloc = parts.netloc.rsplit(":", 1)[0] + f":{proxy_port}"
    return parts._replace(netloc=netloc).geturl()
