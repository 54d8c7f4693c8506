"""A deployment described by a target file (TOML or YAML), reached through testinfra.

    name = "prod-eu"
    production = true                 # only readonly checks run; writes and faults are refused
    host = "ssh://ops@forecast-1"     # any testinfra host spec: local://, ssh://, docker://
    [endpoints]
    api_url = "https://forecast.example.com"
    dsn_env = "OPSDRILL_PROD_DSN"     # secrets come from the environment, never the file
    prometheus_url = "http://prometheus:9090"
    backups_dir = "/var/backups/ts-forecast"
    [services.api]
    systemd = "ts-forecast"           # or: pidfile = "/opt/ts-forecast/run/app.pid"
    [services.db]
    systemd = "postgresql"
    [[api_hosts]]                     # more app servers behind the balancer (runbook §7)
    name = "forecast-2"
    host = "ssh://ops@forecast-2"
    api_url = "http://forecast-2:8000"  # this server's own API, past the balancer

A fleet's extra api hosts share the file's keys but for their name, host and api_url, and run
the api unit named in [services.api] (or the services of their own [api_hosts.services]).
Checks of one machine (the `machine` fixture) run once per host; the rest once.

Every service is controlled through the testinfra host, so the same check runs over ssh, in a
container or locally; a production target refuses start/stop/kill always, any other target
unless destructive actions were explicitly allowed. A file target keeps no fault journal, so
it offers no fault-injection capability (`Target.capabilities`): drills are refused on it.
"""

from __future__ import annotations

import os
import signal
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import testinfra
import yaml

from opsdrill.errors import ServiceError, UsageError
from opsdrill.polling import poll
from opsdrill.targets.base import Service, Target
from opsdrill.targets.model import SERVICE_NAMES, Endpoints

__all__ = ["FileTarget", "HostService", "read_target_file"]

ENDPOINT_KEYS = {
    "api_url", "dsn", "dsn_env", "admin_dsn_env", "api_key_env", "prometheus_url",
    "alertmanager_url", "mlflow_url", "home", "models_dir", "logs_dir", "backups_dir",
}  # fmt: skip
PATH_KEYS = ("home", "models_dir", "logs_dir", "backups_dir")
FLEET_KEYS = {"name", "host", "api_url", "services"}
SERVICE_KEYS = ("systemd", "pidfile", "url", "url_env")


def read_target_file(path: Path) -> dict[str, Any]:
    """A target file's keys; a file that is missing or does not parse is one sentence."""
    if not path.exists():
        raise UsageError(f"target file {path} does not exist")
    text = path.read_text()
    try:
        raw = tomllib.loads(text) if path.suffix == ".toml" else yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise UsageError(f"target file {path} does not parse: {exc}") from None
    if not isinstance(raw, dict):
        raise UsageError(f"target file {path} must be a table of keys, not {type(raw).__name__}")
    return raw


def _fleet_entries(path: Path, raw: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The target files of the extra api hosts: the file's own keys with the host's name,
    host, api_url and services; each mistake is one sentence naming the key."""
    entries = raw.get("api_hosts", [])
    where = f"target file {path}"
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise UsageError(f"{where}: api_hosts must be a list of tables ([[api_hosts]])")
    base = {k: v for k, v in raw.items() if k != "api_hosts"}
    names = {str(raw.get("name", path.stem))}
    members = []
    for i, entry in enumerate(entries, 1):
        if unknown := set(entry) - FLEET_KEYS:
            raise UsageError(
                f"{where}: api_hosts #{i}: unknown key(s) {', '.join(sorted(unknown))}"
            )
        for key in ("name", "host", "api_url"):
            if not isinstance(entry.get(key), str) or not entry[key]:
                raise UsageError(f'{where}: api_hosts #{i} needs {key} = "..."')
        if entry["name"] in names:
            raise UsageError(f"{where}: api_hosts #{i}: the name {entry['name']!r} is taken")
        names.add(entry["name"])
        if entry["host"].startswith("ssh://") != str(raw.get("host", "")).startswith("ssh://"):
            raise UsageError(
                f"{where}: api_hosts #{i}: host {entry['host']!r} is not reached like the "
                f"file's host {raw.get('host')!r}; a fleet is all ssh:// or none"
            )
        api = (raw.get("services") or {}).get("api")
        services = entry.get("services", {"api": api} if api else {})
        endpoints = {**(raw.get("endpoints") or {}), "api_url": entry["api_url"]}
        members.append({**base, "name": entry["name"], "host": entry["host"],
                        "endpoints": endpoints, "services": services})  # fmt: skip
    return members


@dataclass(frozen=True)
class HostService(Service):
    """A service found through the host: a systemd unit, or a pid file."""

    name: str
    target: FileTarget
    systemd: str | None = None
    pidfile: str | None = None
    #: where it listens, as the machine running opsdrill reaches it (may hold a password,
    #: from the environment: print it through `public_url`)
    address: str | None = None

    @property
    def url(self) -> str | None:
        return self.address

    def is_running(self) -> bool:
        if self.systemd:
            return bool(self.target.host.service(self.systemd).is_running)
        return self.pid() is not None

    def pid(self) -> int | None:
        if self.systemd:
            out = self.target.host.run(f"systemctl show -p MainPID --value {self.systemd}")
            pid = int(out.stdout.strip() or 0)
            return pid or None
        if self.pidfile:
            f = self.target.host.file(self.pidfile)
            if not f.exists:
                return None
            pid = int(f.content_string.strip() or 0)
            return pid if pid and self.target.host.run(f"kill -0 {pid}").rc == 0 else None
        return None

    def healthy(self) -> bool:
        return self.is_running()

    def _control(self, verb: str) -> None:
        self.target.require_destructive(f"{verb} {self.name}", self.target.allow_destructive)
        if not self.systemd:
            raise ServiceError(f"{self.name} has no systemd unit in the target file: cannot {verb}")
        done = self.target.host.run(f"systemctl {verb} {self.systemd}")
        if done.rc != 0:
            raise ServiceError(f"systemctl {verb} {self.systemd} failed: {done.stderr.strip()}")

    def start(self, timeout: float = 60.0) -> None:
        self._control("start")
        if poll(lambda: self.is_running() or None, timeout, interval=0.2) is None:
            raise ServiceError(f"{self.name} did not start within {timeout:.0f} s")

    def stop(self, timeout: float = 30.0) -> None:
        self._control("stop")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        self.target.require_destructive(f"kill {self.name}", self.target.allow_destructive)
        pid = self.pid()
        if pid is None:
            raise ServiceError(f"cannot signal {self.name}: it is not running")
        self.target.host.run(f"kill -{int(sig)} {pid}")


class FileTarget(Target):
    def __init__(self, path: Path, raw: Mapping[str, Any]) -> None:
        self.path = path
        self.name = str(raw.get("name", path.stem))
        self.production = bool(raw.get("production", True))  # unknown means careful
        self.allow_destructive = False
        # false: the host shares its CPUs with other work (a container on a shared machine),
        # so the CPU row reads the stack's own processes, not the whole host
        self.dedicated_host = bool(raw.get("dedicated_host", True))
        self.host_spec = str(raw.get("host", "local://"))
        self._endpoints = self._parse_endpoints(raw.get("endpoints"))
        self._services = self._parse_services(raw.get("services", {}))
        self._host: Any = None
        self._fleet_files = _fleet_entries(path, raw)
        self._members: list[FileTarget] | None = None

    def fleet(self) -> Sequence[Target]:
        if self._members is None:
            # a fleet is reached all alike (checked in _fleet_entries): its members are
            # targets of this one's kind
            self._members = [type(self)(self.path, m) for m in self._fleet_files]
        for member in self._members:  # one session's rights hold on every host
            member.allow_destructive = self.allow_destructive
        return (self, *self._members)

    def testinfra_host(self) -> Any:
        return self.host  # with its ssh options (key, known_hosts) when it is a host

    @property
    def spec(self) -> str:
        """The file's path: its name alone would not build it again in a game day's suites."""
        return str(self.path.absolute())

    @property
    def host(self) -> Any:
        """The testinfra host, connected on first use."""
        if self._host is None:
            try:
                self._host = testinfra.get_host(self.host_spec)
            except Exception as exc:  # testinfra raises plain RuntimeError for bad specs
                raise UsageError(f"target {self.name}: host {self.host_spec!r}: {exc}") from None
        return self._host

    def _parse_endpoints(self, raw: Any) -> Endpoints:
        where = f"target file {self.path}"
        if not isinstance(raw, dict) or "api_url" not in raw:
            raise UsageError(f"{where} needs an [endpoints] table with at least api_url")
        if unknown := set(raw) - ENDPOINT_KEYS:
            raise UsageError(f"{where}: unknown endpoint key(s) {', '.join(sorted(unknown))}")
        if "dsn" in raw and urlsplit(str(raw["dsn"])).password:
            raise UsageError(f"{where}: put the DSN's password in the environment (dsn_env)")
        dsn = str(raw.get("dsn") or _env(raw.get("dsn_env"), where) or "")
        return Endpoints(
            api_url=str(raw["api_url"]).rstrip("/"),
            dsn=dsn,
            admin_dsn=_env(raw.get("admin_dsn_env"), where),
            api_key=_env(raw.get("api_key_env"), where),
            prometheus_url=raw.get("prometheus_url"),
            mlflow_url=raw.get("mlflow_url"),
            alertmanager_url=raw.get("alertmanager_url"),
            **{k: Path(raw[k]) for k in PATH_KEYS if k in raw},
        )

    def _parse_services(self, raw: Any) -> dict[str, Service]:
        if not isinstance(raw, dict):
            raise UsageError(f"target file {self.path}: [services] must be a table")
        services: dict[str, Service] = {}
        for name, spec in raw.items():
            if name not in SERVICE_NAMES:
                raise UsageError(
                    f"target file {self.path}: unknown service {name!r}; "
                    f"use one of {', '.join(SERVICE_NAMES)}"
                )
            if not isinstance(spec, dict) or not (set(spec) & {"systemd", "pidfile"}):
                raise UsageError(
                    f"target file {self.path}: service {name!r} needs systemd = UNIT "
                    "or pidfile = PATH"
                )
            services[name] = HostService(
                name, self, spec.get("systemd"), spec.get("pidfile"), self._service_url(name, spec)
            )
        return services

    def _service_url(self, name: str, spec: Mapping[str, Any]) -> str | None:
        """`url` (no password in a file) or `url_env` (a variable holding it, secrets and all)."""
        where = f"target file {self.path}: service {name!r}"
        if unknown := sorted(set(spec) - set(SERVICE_KEYS)):
            raise UsageError(f"{where}: unknown key {unknown[0]!r}; use {', '.join(SERVICE_KEYS)}")
        if "url" in spec and urlsplit(str(spec["url"])).password:
            raise UsageError(f"{where}: put the url's password in the environment (url_env)")
        url = spec.get("url") or _env(spec.get("url_env"), where)
        return str(url) if url else None

    @property
    def endpoints(self) -> Endpoints:
        return self._endpoints

    @property
    def services(self) -> Mapping[str, Service]:
        return self._services


def _env(name: Any, where: str) -> str | None:
    if name is None:
        return None
    value = os.environ.get(str(name))
    if value is None:
        raise UsageError(f"{where} reads a secret from ${name}, which is not set: export it")
    return value
