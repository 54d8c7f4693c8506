"""Toxiproxy's API, the one client: the PyPI `toxiproxy-python`, with its server address set
under a lock and its transport errors translated at this boundary.

The PyPI client keeps the server's host and port in class attributes, so one caller at a time
may use it; every use goes through `ToxiproxyClient`, which holds that lock.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar
from urllib.parse import urlsplit

from opsdrill.errors import MissingDependency, TargetUnreachable

__all__ = ["ToxiproxyClient"]

T = TypeVar("T")

_LOCK = threading.Lock()


class ToxiproxyClient:
    """The Toxiproxy server at `url` (its HTTP API)."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")

    def _call(self, action: Callable[[Any], T]) -> T:
        # here: a missing client is one sentence when a proxy is asked, not an import error
        try:
            from toxiproxy import Toxiproxy  # type: ignore[import-untyped]
        except ImportError as exc:
            raise MissingDependency(
                "Toxiproxy needs its client: pip install toxiproxy-python"
            ) from exc
        parts = urlsplit(self.url)
        with _LOCK:
            client = Toxiproxy()
            client.update_api_consumer(parts.hostname, parts.port)
            try:
                return action(client)
            except OSError as exc:  # requests' connection errors are OSErrors
                raise TargetUnreachable(f"Toxiproxy at {self.url} does not answer: {exc}") from exc

    def proxy_names(self) -> set[str]:
        """The proxies the server has now."""
        return set(self._call(lambda client: client.proxies()))

    def toxics_on(self, proxy: str) -> list[str]:
        """Names of the toxics on `proxy` now (empty when the proxy does not exist)."""

        def names(client: Any) -> list[str]:
            found = client.get_proxy(proxy)
            return [] if found is None else sorted(found.toxics())

        return self._call(names)

    def add_toxic(self, proxy: str, **toxic: Any) -> bool:
        """Add a toxic (`name`, `type`, `stream`, `toxicity`, `attributes`); False when the
        server has no such proxy."""

        def add(client: Any) -> bool:
            found = client.get_proxy(proxy)
            if found is None:
                return False
            found.add_toxic(**toxic)
            return True

        return self._call(add)

    def remove_toxic(self, proxy: str, name: str) -> None:
        """Remove the toxic `name` from `proxy`; nothing when either is gone already."""

        def remove(client: Any) -> None:
            from toxiproxy.exceptions import NotFound  # type: ignore[import-untyped]  # above

            found = client.get_proxy(proxy)
            if found is not None and name in found.toxics():
                with contextlib.suppress(NotFound):  # removed meanwhile: what we wanted
                    found.destroy_toxic(name)

        self._call(remove)

    def populate(self, proxies: Sequence[Mapping[str, Any]]) -> None:
        """Create these proxies, replacing one of the same name that differs."""
        self._call(lambda client: client.populate([dict(p) for p in proxies]))
