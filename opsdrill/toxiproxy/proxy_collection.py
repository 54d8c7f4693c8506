"""All proxies of a server by name: create, update, delete, populate and reset."""

from __future__ import annotations

import random
from typing import Any

from opsdrill.toxiproxy import errors
from opsdrill.toxiproxy.proxy import DEFAULT_LISTEN, Proxy

__all__ = ["ProxyCollection", "ProxySpec"]


class ProxySpec:
    """The proxy fields of a request body, type-checked like Go's JSON decoding."""

    def __init__(self, body: object, defaults: Proxy | None = None, where: str = "") -> None:
        if not isinstance(body, dict):
            raise errors.bad_request_body("expected a JSON object")
        fields: dict[str, Any] = body
        self.name = self._text(fields, "name", defaults.name if defaults else "")
        self.listen = self._text(fields, "listen", defaults.listen if defaults else "")
        self.upstream = self._text(fields, "upstream", defaults.upstream if defaults else "")
        enabled = fields.get("enabled")
        if enabled is not None and not isinstance(enabled, bool):
            raise errors.bad_request_body(f"field enabled must be true or false, got {enabled!r}")
        self.enabled: bool | None = enabled if enabled is not None else None
        if defaults is None:
            if not self.name:
                raise errors.missing_field("name" + where)
            if not self.upstream:
                raise errors.missing_field("upstream" + where)
            self.listen = self.listen or DEFAULT_LISTEN

    @staticmethod
    def _text(fields: dict[str, Any], key: str, default: str) -> str:
        value = fields.get(key)
        if value is None:
            return default
        if not isinstance(value, str):
            raise errors.bad_request_body(f"field {key} must be a string, got {value!r}")
        return value


class ProxyCollection:
    """The server's proxies; every method runs on the server's event loop."""

    def __init__(self, rng: random.Random | None = None) -> None:
        self.proxies: dict[str, Proxy] = {}
        self.rng = rng or random.Random()

    def get(self, name: str) -> Proxy:
        try:
            return self.proxies[name]
        except KeyError:
            raise errors.proxy_not_found() from None

    async def create(self, body: object) -> Proxy:
        spec = ProxySpec(body)
        proxy = Proxy(spec.name, spec.listen, spec.upstream, self.rng)
        if spec.name in self.proxies:
            raise errors.proxy_already_exists()
        if spec.enabled is not False:
            await proxy.start()
        self.proxies[proxy.name] = proxy
        return proxy

    async def update(self, name: str, body: object) -> Proxy:
        proxy = self.get(name)
        spec = ProxySpec(body, defaults=proxy)
        enabled = proxy.enabled if spec.enabled is None else spec.enabled
        await proxy.update(spec.listen, spec.upstream, enabled)
        return proxy

    def remove(self, name: str) -> None:
        self.get(name).stop()
        del self.proxies[name]

    async def populate(self, body: object) -> tuple[list[Proxy], errors.ApiError | None]:
        """Create or replace proxies; ones whose addresses are unchanged are left alone."""
        if not isinstance(body, list):
            raise errors.bad_request_body("expected a JSON array of proxies")
        specs = [ProxySpec(item, where=f" at proxy {i}") for i, item in enumerate(body, 1)]
        for spec in specs:  # check every address before touching anything
            Proxy(spec.name, spec.listen, spec.upstream, self.rng)
        done: list[Proxy] = []
        for spec in specs:
            try:
                done.append(await self._add_or_replace(spec))
            except errors.ApiError as exc:
                return done, exc
        return done, None

    async def _add_or_replace(self, spec: ProxySpec) -> Proxy:
        existing = self.proxies.get(spec.name)
        if existing is not None:
            if not existing.differs(spec.listen, spec.upstream):
                return existing
            existing.stop()
        proxy = Proxy(spec.name, spec.listen, spec.upstream, self.rng)
        if spec.enabled is not False:
            await proxy.start()
        self.proxies[proxy.name] = proxy
        return proxy

    async def reset(self) -> None:
        """Enable every proxy and remove every toxic."""
        for proxy in self.proxies.values():
            await proxy.start()
            proxy.toxics.reset()

    def close(self) -> None:
        for proxy in self.proxies.values():
            proxy.stop()
