"""A host's Toxiproxy, as its target file's `[toxiproxy]` table names it.

A staging host may run a Toxiproxy between the app and PostgreSQL (proxy `postgres`: the app's
DATABASE_URL points at it) and in front of the API (proxy `api`), as the host image does
(system/host/toxiproxy.service). opsdrill cannot add one over ssh without rewiring the app, so
the hops are the host's; the table says where they are reached from the machine running
opsdrill:

    [toxiproxy]
    url = "http://staging-1:8475"              # Toxiproxy's API
    proxied_api_url = "http://staging-1:8001"  # the API through the proxy `api`
    proxied_db = "staging-1:15433"             # PostgreSQL through the proxy `postgres`

Without the table the host has no `toxiproxy` capability and network drills are skipped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from opsdrill.errors import CapabilityMissing, TargetUnreachable, UsageError
from opsdrill.stack.toxiproxy import ToxiproxyClient
from opsdrill.targets.drill_parts import ProxyHops

__all__ = ["PROXIES", "HostProxy", "parse_host_proxy"]

#: link -> the proxy's name on the host's Toxiproxy (system/host/toxiproxy.json)
PROXIES = {"app_db": "postgres", "client_api": "api"}
KEYS = ("url", "proxied_api_url", "proxied_db")


@dataclass(frozen=True)
class HostProxy:
    url: str
    proxied_api_url: str
    proxied_db: str  # host:port

    def hops(self, dsn: str) -> ProxyHops:
        """The hops, the app's database path being `dsn` (the target's) at `proxied_db`;
        CapabilityMissing, in one sentence, when the host's Toxiproxy lacks a proxy."""
        try:
            have = ToxiproxyClient(self.url).proxy_names()
        except (TargetUnreachable, ValueError) as exc:
            raise CapabilityMissing(
                f"the host's Toxiproxy at {self.url} does not answer ({exc}): start it "
                "(systemctl start ts-forecast-toxiproxy) or fix [toxiproxy] url"
            ) from None
        if missing := sorted(set(PROXIES.values()) - have):
            raise CapabilityMissing(
                f"the host's Toxiproxy at {self.url} has no proxy {', '.join(missing)} "
                "(system/host/toxiproxy.json names them)"
            )
        parts = urlsplit(dsn)
        auth = parts.netloc.rpartition("@")[0]
        netloc = f"{auth}@{self.proxied_db}" if auth else self.proxied_db
        return ProxyHops(
            toxiproxy_url=self.url,
            app_dsn=parts._replace(netloc=netloc).geturl(),
            api_url=self.proxied_api_url,
        )


def parse_host_proxy(path: Path, raw: Mapping[str, Any]) -> HostProxy | None:
    """The `[toxiproxy]` table, or None without one; a bad entry is one UsageError."""
    table = raw.get("toxiproxy")
    if table is None:
        return None
    where = f"target file {path}: [toxiproxy]"
    if not isinstance(table, dict):
        raise UsageError(f"{where} must be a table with {', '.join(KEYS)}")
    if unknown := sorted(set(table) - set(KEYS)):
        raise UsageError(f"{where}: unknown key {unknown[0]!r}; use {', '.join(KEYS)}")
    if missing := [k for k in KEYS if not isinstance(table.get(k), str)]:
        raise UsageError(f'{where} needs {missing[0]} = "..." ({", ".join(KEYS)})')
    for key in ("url", "proxied_api_url"):
        if urlsplit(table[key]).scheme not in ("http", "https"):
            raise UsageError(f"{where}: {key} must be an http:// URL, not {table[key]!r}")
    host, _, port = table["proxied_db"].rpartition(":")
    if not host or not port.isdigit():
        raise UsageError(f"{where}: proxied_db must be HOST:PORT, not {table['proxied_db']!r}")
    return HostProxy(table["url"].rstrip("/"), table["proxied_api_url"].rstrip("/"),
                     table["proxied_db"])  # fmt: skip
