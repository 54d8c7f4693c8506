"""The embedded stack rewired for a drill: Toxiproxy put between its parts, its home moved onto
a size-limited filesystem, each journaled as a part (`parts.py`) so a killed run's rollback
takes it out again. A mixin of `LocalTarget`, which holds the state it reads."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from pathlib import Path

from opsdrill.errors import CapabilityMissing
from opsdrill.targets.base import ProxyHops, Service
from opsdrill.targets.drill_parts import Say
from opsdrill.targets.local import proxies
from opsdrill.targets.local.data_fs import IMAGE, DataFilesystem
from opsdrill.targets.local.options import StackOptions
from opsdrill.targets.local.parts import DataFsInPlace, ProxyInPlace

__all__ = ["Rewiring"]


class Rewiring:
    """`ensure_proxy` and `ensure_data_fs` (DrillParts) for the embedded stack."""

    state_dir: Path
    options: StackOptions
    _services: Mapping[str, Service] | None

    # what LocalTarget provides
    services: Mapping[str, Service]
    home: Path
    data_fs: DataFilesystem | None
    toxiproxy_url: str | None
    proxied_api_url: str | None
    proxies_config: Callable[[], list[dict[str, object]]]
    app_dsn: Callable[[], str]

    @contextlib.contextmanager
    def ensure_proxy(self, say: Say = print) -> Iterator[ProxyHops]:
        """Toxiproxy between app and database and before the API; added for the context when
        the stack was started without it (the app restarts onto it, and back afterwards)."""
        if self.options.proxy:
            yield self._proxy_hops()
            return
        say("the stack has no Toxiproxy: putting the embedded one between the app and "
            "PostgreSQL and in front of the API for this session (the app restarts onto it; "
            "its direct wiring is restored afterwards)")  # fmt: skip
        with ProxyInPlace(self):
            yield self._proxy_hops()

    def _proxy_hops(self) -> ProxyHops:
        url, api = self.toxiproxy_url, self.proxied_api_url
        assert url is not None and api is not None  # the proxy option is on
        return ProxyHops(toxiproxy_url=url, app_dsn=self.app_dsn(), api_url=api)

    def install_proxy(self) -> None:
        """Turn the proxy option on: start the proxy, restart a running app through it."""
        self._set_options(proxy=True)
        if (proxy := self.services.get("proxy")) is not None:
            proxy.start()
        else:  # OPSDRILL_TOXIPROXY_URL: an external server we only populate
            proxies.populate_external(self.toxiproxy_url, self.proxies_config())
        self._restart_app_if_running()

    def remove_proxy(self) -> None:
        """Turn the proxy option off: the app back on its direct DSN, the proxy stopped."""
        proxy = self.services.get("proxy")
        self._set_options(proxy=False)
        self._restart_app_if_running()
        if proxy is not None:
            proxy.stop()

    @contextlib.contextmanager
    def ensure_data_fs(self, size: str, say: Say = print) -> Iterator[Path]:
        """NF_HOME on a size-limited filesystem; added for the context when the stack was
        started without one (the app restarts onto it; the home is copied there and back)."""
        fs = self.data_fs
        if fs is not None:
            if not fs.mounted():
                raise CapabilityMissing(
                    f"the stack in {self.state_dir} has a data filesystem that is not mounted; "
                    "run 'opsdrill up' to mount it"
                )
            yield self.home
            return
        if reason := DataFilesystem.supported():
            raise CapabilityMissing(f"cannot give the stack a data filesystem here: {reason}")
        say(f"the stack has no size-limited data filesystem: moving its home onto a {size} "
            "ext4 image for this session (the app restarts onto it; the home is moved back "
            "afterwards)")  # fmt: skip
        with DataFsInPlace(self, size=size):
            yield self.home

    def install_data_fs(self, size: str) -> None:
        """Turn the data filesystem option on: the app stopped, home moved onto the image."""
        image = self.state_dir / IMAGE
        if not os.path.ismount(self.home):
            image.unlink(missing_ok=True)  # a leftover of a half-done install: start afresh
        with self._app_stopped():
            self._set_options(data_fs_size=size)
            fs = self.data_fs
            assert fs is not None
            fs.mount(say=lambda _line: None)

    def remove_data_fs(self) -> None:
        """Turn the data filesystem option off: home copied back off the image, image gone."""
        fs = self.data_fs
        if fs is None:
            return
        with self._app_stopped():
            if fs.mounted():  # strictly: the image is mounted again below to copy it out
                fs.unmount(say=lambda _line: None, lazy=False)
            if fs.image.exists():
                fs.copy_out(self.home)
                fs.image.unlink()
            self._set_options(data_fs_size=None)

    def _set_options(self, **changes: object) -> None:
        self.options = replace(self.options, **changes)  # type: ignore[arg-type]
        self.options.save(self.state_dir)
        self._services = None  # the proxy service comes and goes with its option

    @contextlib.contextmanager
    def _app_stopped(self) -> Iterator[None]:
        """Stop a running app for the block and start it again after, however it ends."""
        api = self.services["api"]
        running = api.is_running()
        if running:
            api.stop()
        try:
            yield
        finally:
            if running:
                self.services["api"].start(timeout=120.0)

    def _restart_app_if_running(self) -> None:
        api = self.services["api"]
        if api.is_running():
            api.restart(timeout=120.0)
