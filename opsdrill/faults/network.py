"""Network faults through Toxiproxy: runbook §5.2.5 (slow API) and §5.2.2 (app ↔ database).

A stack with Toxiproxy between its parts (`opsdrill up --proxy`, a composed stack's proxy, or
one a drill put in place with `Target.ensure_proxy`) routes the app's database link through
one proxy and offers the API behind another; `Target.proxy_for(link)` names the server and the
proxy on each link (`postgres` is the app -> database link, `api` the clients -> API one).
Each fault adds one toxic (latency, timeout, reset_peer, bandwidth) to one proxy and stream,
through the `toxiproxy-python` client. The toxic's name, proxy and server URL are journaled
before it is added; the revert deletes it by name, so `opsdrill rollback` in another process
undoes it too (the proxy outlives the runner). A proxy process that died took its toxics with it.
"""

from __future__ import annotations

from typing import Any, ClassVar

from opsdrill.errors import FaultNotEffective, OpsdrillError
from opsdrill.faults.base import JOURNAL, Fault, register
from opsdrill.stack.toxiproxy import ToxiproxyClient
from opsdrill.targets.base import Target
from opsdrill.targets.model import LINKS, ProxyLink

__all__ = ["PROXY_LINKS", "Bandwidth", "Latency", "NetworkToxic", "ResetPeer", "Timeout",
           "toxics_on"]  # fmt: skip

#: a fault's `proxy` parameter -> the link it sits on (`Target.proxy_for`); a link's own
#: name works too
PROXY_LINKS = {"postgres": "app_db", "api": "client_api"}


def toxics_on(url: str, proxy: str) -> list[str]:
    """Names of the toxics on `proxy` now (empty when the proxy does not exist)."""
    return ToxiproxyClient(url).toxics_on(proxy)


class NetworkToxic(Fault):
    needs = JOURNAL | {"toxiproxy"}
    toxic_type: ClassVar[str]

    def __init__(
        self,
        target: Target,
        *,
        proxy: str = "postgres",
        stream: str = "downstream",
        toxicity: float = 1.0,
        **attributes: int,
    ) -> None:
        super().__init__(target, proxy=proxy, stream=stream, toxicity=toxicity, **attributes)

    @property
    def attributes(self) -> dict[str, int]:
        return {k: v for k, v in self.params.items() if k not in ("proxy", "stream", "toxicity")}

    def describe(self) -> str:
        attrs = ", ".join(f"{k}={v}" for k, v in self.attributes.items())
        return f"{self.kind}({self.params['proxy']}/{self.params['stream']}: {attrs})"

    def link(self) -> ProxyLink:
        """The Toxiproxy hop this fault goes on, as the target names it now."""
        proxy = self.params["proxy"]
        link = PROXY_LINKS.get(proxy, proxy)
        if link not in LINKS:
            raise FaultNotEffective(
                f"no proxy {proxy!r}: use one of {', '.join([*PROXY_LINKS, *LINKS])}"
            )
        return self.target.proxy_for(link)

    def _inject(self) -> None:
        hop = self.link()
        url, proxy = hop.toxiproxy_url, hop.proxy
        name = f"opsdrill-{self.kind}-{self.entry.fault_id}"
        self.save_undo(url=url, proxy=proxy, toxic=name)

        added = ToxiproxyClient(url).add_toxic(
            proxy,
            name=name,
            type=self.toxic_type,
            stream=self.params["stream"],
            toxicity=self.params["toxicity"],
            attributes=self.attributes,
        )
        if not added:
            raise FaultNotEffective(f"Toxiproxy at {url} has no proxy named {proxy!r}")
        if name not in toxics_on(url, proxy):
            raise FaultNotEffective(f"toxic {name} was added but {proxy!r} does not list it")

    def _revert(self) -> None:
        undo = self.entry.undo
        name = undo.get("toxic")
        if not name or self._proxy_gone():
            return
        url, proxy = self._url_now(undo["url"]), undo.get("proxy", self.params["proxy"])

        ToxiproxyClient(url).remove_toxic(proxy, name)

    def _url_now(self, journaled: str) -> str:
        """Toxiproxy's API where the target says it is now, else where it was journaled: a
        restarted container is published on a new ephemeral host port."""
        try:
            return self.link().toxiproxy_url
        except OpsdrillError:
            return journaled

    def _proxy_gone(self) -> bool:
        """True when our embedded proxy process is not running: its toxics died with it."""
        service = self.target.services.get("proxy")
        return service is not None and not service.is_running()


@register
class Latency(NetworkToxic):
    """Every chunk on the stream is delayed by `latency` ms (± `jitter`)."""

    kind = "net_latency"

    toxic_type = "latency"
    blast_radius = "every request crossing the proxy: slower, not failed"
    undo_summary = "remove the latency toxic by name"
    recovers_by_itself = True
    recovers_reason = (
        "added latency slows requests but fails none: the stack must keep its steady state "
        "while the delay lasts, with no procedure"
    )

    def __init__(self, target: Target, *, latency: int = 300, jitter: int = 0,
                 **kw: Any) -> None:  # fmt: skip
        super().__init__(target, latency=latency, jitter=jitter, **kw)


@register
class Timeout(NetworkToxic):
    """Data stops flowing; connections are closed after `timeout` ms (0: held forever)."""

    kind = "net_timeout"

    toxic_type = "timeout"
    blast_radius = "every connection crossing the proxy hangs, then is closed"
    undo_summary = "remove the timeout toxic by name"

    def __init__(self, target: Target, *, timeout: int = 0, **kw: Any) -> None:
        super().__init__(target, timeout=timeout, **kw)


@register
class ResetPeer(NetworkToxic):
    """Connections are reset (TCP RST) after `timeout` ms: the peer sees ECONNRESET."""

    kind = "net_reset_peer"

    toxic_type = "reset_peer"
    blast_radius = "every connection crossing the proxy is reset, new ones too"
    undo_summary = "remove the reset_peer toxic by name"

    def __init__(self, target: Target, *, timeout: int = 0, **kw: Any) -> None:
        super().__init__(target, timeout=timeout, **kw)


@register
class Bandwidth(NetworkToxic):
    """The stream is limited to `rate` KB/s."""

    kind = "net_bandwidth"

    toxic_type = "bandwidth"
    blast_radius = "large responses crossing the proxy slow down"
    undo_summary = "remove the bandwidth toxic by name"

    def __init__(self, target: Target, *, rate: int = 1, **kw: Any) -> None:
        super().__init__(target, rate=rate, **kw)
