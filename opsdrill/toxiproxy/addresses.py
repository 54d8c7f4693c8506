"""`host:port` strings as Toxiproxy writes them, restricted to loopback.

Safety rule of this project: the embedded server only ever listens on, and connects to,
loopback (127.0.0.0/8, ::1, `localhost`), so a drill cannot expose or reach anything off the
machine. Any other address is refused with a 400 before a socket is opened.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from opsdrill.toxiproxy.errors import ApiError

__all__ = ["HostPort", "is_loopback_host", "parse_loopback"]

LOOPBACK_HINT = "use 127.0.0.1, ::1 or localhost"


@dataclass(frozen=True)
class HostPort:
    """A parsed address; `host` is as written (brackets stripped)."""

    host: str
    port: int

    def resolved_host(self) -> str:
        """The literal IP to bind: `localhost` means 127.0.0.1, as Go's resolver prefers."""
        return "127.0.0.1" if self.host.lower() == "localhost" else self.host

    def __str__(self) -> str:
        return format_host_port(self.host, self.port)


def format_host_port(host: str, port: int) -> str:
    """Go's net.JoinHostPort: IPv6 literals in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def is_loopback_host(host: str) -> bool:
    """True for `localhost` and literal IPs in 127.0.0.0/8 or ::1."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def split_host_port(text: str) -> tuple[str, str]:
    """Split like Go's net.SplitHostPort; raises ValueError on a malformed address."""
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
        if not sep:
            raise ValueError("missing port in address")
        return host, port
    host, sep, port = text.rpartition(":")
    if not sep:
        raise ValueError("missing port in address")
    if ":" in host:
        raise ValueError("too many colons in address")
    return host, port


def parse_loopback(text: object, field: str) -> HostPort:
    """Parse `text` as a loopback host:port, or raise a 400 ApiError saying why not."""
    if not isinstance(text, str):
        raise ApiError(f"{field} must be a string like 127.0.0.1:8474", 400)
    try:
        host, port_text = split_host_port(text)
        port = int(port_text)
    except ValueError as exc:
        raise ApiError(f"invalid {field} address {text!r}: {exc}", 400) from exc
    if not 0 <= port <= 65535:
        raise ApiError(f"invalid {field} address {text!r}: port out of range", 400)
    if not is_loopback_host(host):
        shown = host or "all interfaces"
        raise ApiError(
            f"{field} address {text!r} is not loopback ({shown}); only loopback is allowed "
            f"here, {LOOPBACK_HINT}",
            400,
        )
    return HostPort(host, port)
