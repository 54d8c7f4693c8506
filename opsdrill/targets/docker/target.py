"""A composed stack (`--target docker:PROJECT`, alias `compose:PROJECT`), through the Engine API.

The containers are found by Compose's labels (`com.docker.compose.project`, `.service`), so any
engine that serves the Docker API works: dockerd, or Podman's API service (`DOCKER_HOST`).
Endpoints come from the published ports; the secrets from environment variables named in the
spec, else from the containers' own environment (whoever can reach the Docker API can read
that anyway); they are held in `Endpoints` and never printed:

    docker:ts-forecast
    docker:ts-forecast,api_key_env=NF_API_KEY,dsn_env=OPSDRILL_DSN,admin_dsn_env=OPSDRILL_ADMIN_DSN

Services are the containers: a kill signals the container's main process (PID 1 in it, the
postmaster or the API server), start/stop/restart/pause go through the API and wait on the
container's healthcheck. Host facts for the checks come through testinfra's `docker://`
backend, inside the api container, where the app's files are.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from opsdrill.errors import (
    CapabilityMissing,
    ServiceError,
    UsageError,
)
from opsdrill.stack.api import ApiClient
from opsdrill.state import journal_home
from opsdrill.targets import first_data
from opsdrill.targets.base import ProxyHops, Service, Target
from opsdrill.targets.docker import exec as docker_exec
from opsdrill.targets.docker.files import ContainerFiles
from opsdrill.targets.docker.memory import cgroup_oom_kills, limit_of, memory_of, set_limit
from opsdrill.targets.docker.sdk import docker
from opsdrill.targets.docker.services import ContainerService
from opsdrill.targets.docker.spec import PROJECT_LABEL, SERVICE_ALIASES, SERVICE_LABEL, client
from opsdrill.targets.drill_parts import Say
from opsdrill.targets.files import ServiceFiles
from opsdrill.targets.model import Endpoints, ExecResult, MemoryUsage, ProxyLink

__all__ = ["DockerTarget"]

#: container ports of the composed stack (system/compose.yaml)
API_PORT, PROXIED_API_PORT, TOXIPROXY_PORT, DB_PORT = 8000, 8001, 8475, 5432
#: the app's own path to the database (Toxiproxy's `postgres` proxy), bridged for this machine
PROXIED_DB_PORT = 15433
#: where the api writes its pid under NF_HOME (Settings.pid_file)
PID_FILE = Path("run") / "app.pid"
#: where compose.yaml mounts Prometheus' shortened.json (its rules at drill scale)
SHORTENED_JSON = "/etc/prometheus/shortened.json"
DATABASE = "ts_forecast_system"
HOME = Path("/var/lib/nf_auto_runner")


class DockerTarget(Target):
    """A Compose project's containers, found on the engine by their labels."""

    production = False

    def __init__(self, project: str, secret_env: Mapping[str, str] | None = None) -> None:
        self.project = project
        self.name = f"docker:{project}"
        self.secret_env = dict(secret_env or {})
        self.client = client()
        found = self.client.containers.list(
            all=True, filters={"label": f"{PROJECT_LABEL}={project}"}
        )
        if not found:
            raise UsageError(
                f"no containers of Compose project {project!r} on this engine: bring it up "
                f"(docker compose -p {project} -f system/compose.yaml up -d) or check the name"
            )
        self._services: dict[str, ContainerService] = {}
        for container in found:
            compose_name = container.labels.get(SERVICE_LABEL, "")
            name = SERVICE_ALIASES.get(compose_name, compose_name.replace("-", "_"))
            self._services[name] = ContainerService(name, self, container)
        if "api" not in self._services:
            raise UsageError(f"Compose project {project!r} has no api service: is it the stack?")
        self.host_spec = f"docker://{self._services['api'].container.name}"
        # an engine on this machine shares it with opsdrill and its test runner: the CPU
        # checks then measure the containers' processes (host pids) instead of the whole host
        self.dedicated_host = not self.engine_is_local()
        self._endpoints: Endpoints | None = None
        self._mem_total: int | None = None

    @property
    def services(self) -> Mapping[str, Service]:
        return self._services

    @property
    def service_control(self) -> bool:
        return True

    @property
    def kind(self) -> str:
        return "compose"

    @staticmethod
    def engine_is_local() -> bool:
        """The engine runs on this machine (a unix socket): container pids are host pids."""
        return os.environ.get("DOCKER_HOST", "unix://").startswith("unix://")

    def container_env(self, service: str) -> dict[str, str]:
        """The environment a service's container was created with."""
        attrs = self._services[service].container.attrs
        pairs = (item.partition("=") for item in attrs["Config"].get("Env") or [])
        return {key: value for key, _, value in pairs}

    def published(self, service: str, port: int) -> str | None:
        """`127.0.0.1:PORT` where a container port of `service` is published on the host; a
        service sharing another container's network (network_mode: service:X) uses X's ports."""
        container = self._services[service].container
        container.reload()
        mode = container.attrs["HostConfig"].get("NetworkMode", "")
        if mode.startswith("container:"):
            container = self.client.containers.get(mode.removeprefix("container:"))
        bindings = (container.attrs["NetworkSettings"].get("Ports") or {}).get(f"{port}/tcp")
        if not bindings:
            bindings = container.attrs["HostConfig"].get("PortBindings", {}).get(f"{port}/tcp")
            bindings = [b for b in bindings or [] if b.get("HostPort")]
        if not bindings:
            return None
        ip = bindings[0].get("HostIp") or "127.0.0.1"
        return f"{'127.0.0.1' if ip == '0.0.0.0' else ip}:{bindings[0]['HostPort']}"

    def _secret(self, key: str) -> str | None:
        name = self.secret_env.get(key)
        if name is None:
            return None
        value = os.environ.get(name)
        if value is None:
            raise UsageError(f"target {self.name} reads {key[:-4]} from ${name}, which is not set")
        return value

    @property
    def endpoints(self) -> Endpoints:
        if self._endpoints is None:
            self._endpoints = self._find_endpoints()
        return self._endpoints

    def forget_endpoints(self) -> None:
        """Find the endpoints again on next use: a container (re)started by the engine is
        published on new ephemeral host ports (`127.0.0.1::5432`)."""
        self._endpoints = None

    def _find_endpoints(self) -> Endpoints:
        api = self.published("api", API_PORT)
        if api is None:
            raise UsageError(
                f"{self.name}: the api's port {API_PORT} is not published on the host; "
                "publish it (ports: 127.0.0.1::8000)"
            )
        api_env = self.container_env("api")
        db = self.published("db", DB_PORT) if "db" in self._services else None
        dsn = self._secret("dsn_env")
        if dsn is None and db is not None:
            app_url = urlsplit(api_env.get("NF_DIRECT_DATABASE_URL") or api_env["DATABASE_URL"])
            user, password = app_url.username or "", app_url.password or ""
            dsn = f"postgresql://{quote(user)}:{quote(password, safe='')}@{db}/{DATABASE}"
        admin = self._secret("admin_dsn_env")
        if admin is None and db is not None:
            db_env = self.container_env("db")
            admin_user, admin_pw = (
                db_env.get("POSTGRES_USER", "postgres"),
                db_env.get("POSTGRES_PASSWORD"),
            )
            if admin_pw:
                admin = (
                    f"postgresql://{quote(admin_user)}:{quote(admin_pw, safe='')}@{db}/{DATABASE}"
                )
        prometheus = self.published("prometheus", 9090) if "prometheus" in self._services else None
        alertmanager = (
            self.published("alertmanager", 9093) if "alertmanager" in self._services else None
        )
        home = Path(api_env.get("NF_HOME", str(HOME)))
        return Endpoints(
            api_url=f"http://{api}",
            dsn=dsn or "",
            admin_dsn=admin,
            api_key=self._secret("api_key_env") or api_env.get("NF_API_KEY"),
            prometheus_url=f"http://{prometheus}" if prometheus else None,
            alertmanager_url=f"http://{alertmanager}" if alertmanager else None,
            home=home,
            models_dir=home / "models",
            logs_dir=home / "logs" / "app",
            backups_dir=home / "backups",
        )

    def up(self, *, train: bool = True, say: Say = print) -> None:
        """Give a composed stack (`docker compose -p PROJECT up -d`) what `opsdrill up` gives
        the embedded one: its api healthy, the series loaded, a first model, a first backup.
        Compose starts the containers; a second run finds the model and only backs up."""
        self._services["api"]._wait(True, 300, "healthy")
        first_data.seed(self)
        say(f"{'series data':<18} loaded (ops seed in {self._services['api'].container.name})")
        forecast = ApiClient(self.endpoints.api_url).status("/forecast/airpassengers", timeout=60)
        if train and forecast != 200:
            run = first_data.train_first_model(self, timeout=900)
            say(f"{'first model':<18} run {run['run_id']} {run['status']}")
        say(f"{'first backup':<18} {first_data.backup(self)}")

    # -- the seam (opsdrill.targets.base.Target) ----------------------------------------------
    @property
    def journal_dir(self) -> Path:
        return journal_home("compose", self.project)

    def _container(self, service: str) -> Any:
        """The container a seam call acts on: "worker" is the api's (its training workers run
        there, under the api container's memory limit)."""
        name = "api" if service == "worker" else service
        svc = self.service(name)
        assert isinstance(svc, ContainerService)
        return svc.container

    def exec(
        self,
        service: str,
        argv: Sequence[str],
        *,
        timeout: float = 60.0,
        user: str | None = None,
        env: Mapping[str, str] | None = None,
        detach: bool = False,
    ) -> ExecResult:
        """`docker exec` in the service's container, as its image's user unless `user` says
        (docker_exec: bounded in the container, a one-off container when it is stopped);
        `detach` returns the started process's pid, in the container's pid namespace."""
        argv = tuple(argv)
        container = self._container(service)
        container.reload()
        if container.status != "running":
            if detach:
                return ExecResult(argv, 126, "", f"{container.name} is not running")
            return docker_exec.run_oneoff(
                self.client, container, argv, timeout=timeout, user=user, env=env
            )
        if detach:
            return docker_exec.run_detached(container, argv, user=user, env=env)
        return docker_exec.run_in(container, argv, timeout=timeout, user=user, env=env)

    def socket_service(self, service: str) -> str:
        """The service holding `service`'s network namespace (compose.yaml's netns, shared
        by the api and Toxiproxy), which runs while `service` is stopped."""
        mode = self._container(service).attrs["HostConfig"].get("NetworkMode", "")
        if mode.startswith("container:"):
            holder = mode.removeprefix("container:")
            for name, svc in self._services.items():
                if holder in (svc.container.id, svc.container.name):
                    return name
        return service

    def listen_port(self, service: str) -> int:
        """The container port (the published one is another)."""
        if service == "api":
            return API_PORT
        return super().listen_port(service)

    def stack_pids(self, service: str) -> set[int]:
        """In a container only its own main process (pid 1) is the stack's."""
        name = "api" if service == "worker" else service
        return {1} if self.service(name).is_running() else set()

    def ops(self, *args: str, timeout: float = 600.0, database: str | None = None) -> ExecResult:
        """The stack's ops CLI in the api container, on the direct database link, so a network
        fault on the proxy does not stop a recovery procedure."""
        api_env = self.container_env("api")
        direct = api_env.get("NF_DIRECT_DATABASE_URL") or api_env.get("DATABASE_URL")
        if direct and database is not None:
            direct = urlsplit(direct)._replace(path=f"/{database}").geturl()
        env = {"DATABASE_URL": direct} if direct else {}
        return self.exec("api", ["python", "-m", "nf_auto_runner.ops", *args],
                         timeout=timeout, env=env)  # fmt: skip

    def files(self, service: str) -> ServiceFiles:
        container = self._container(service)
        return ContainerFiles(service, container, lambda argv: self.exec(service, argv))

    def set_memory_limit(self, service: str, limit_bytes: int | None) -> int | None:
        """The container's memory limit through the API; None lifts it. Returns the previous
        one (None: none). Only lowering it needs --allow-destructive: raising or lifting it is
        what a revert (and `opsdrill rollback`) does."""
        container = self._container(service)
        before = limit_of(container, self._host_total())
        if limit_bytes is not None and (before is None or limit_bytes < before):
            self.require_destructive(f"lower {service}'s memory limit", self.allow_destructive)
        set_limit(container, limit_bytes, self._host_total())
        return before

    def memory(self, service: str) -> MemoryUsage:
        return memory_of(self._container(service), self._host_total(), workers=service == "worker")

    def _host_total(self) -> int:
        """The engine host's memory, what a container without a limit may use."""
        if self._mem_total is None:
            self._mem_total = int(self.client.info()["MemTotal"])
        return self._mem_total

    def oom_kills(self, service: str) -> int:
        """The container cgroup's oom_kill counter where the engine is local (cgroup v1 or
        v2), else 1 when State.OOMKilled says its main process was OOM-killed."""
        container = self._container(service)
        container.reload()
        counted = cgroup_oom_kills(container.id) if self.engine_is_local() else None
        flagged = int(bool(container.attrs["State"].get("OOMKilled")))
        return max(counted or 0, flagged)

    def clear_leftovers(self, service: str) -> list[str]:
        """A stopped container leaves no process behind; for the api, say where its pid file
        went: compose.yaml keeps it on a tmpfs that goes with the container's stop (read from
        the stopped container's filesystem through the Engine API, never assumed)."""
        if service != "api":
            return []
        home = self.endpoints.home or HOME
        path = home / PID_FILE
        container = self._container("api")
        try:
            container.get_archive(str(path))
        except docker.errors.NotFound:
            return [
                f"no pid file left: {path} went with the stopped container (its run directory "
                "is a tmpfs); no process is left behind a stopped container"
            ]
        except docker.errors.APIError as exc:
            return [f"pid file {path}: not readable in the stopped container ({exc.explanation})"]
        return [
            f"stale pid file {path} left in the stopped container: mount its run directory on "
            "a tmpfs (system/compose.yaml) so a stop discards it"
        ]

    def rule_scaling_text(self) -> str | None:
        """Prometheus' shortened.json, read in its container (compose.yaml mounts it)."""
        if "prometheus" not in self._services:
            return None
        try:
            return self.files("prometheus").read_text(SHORTENED_JSON)
        except (FileNotFoundError, ServiceError):
            return None

    def proxy_for(self, link: str) -> ProxyLink:
        names = {"app_db": "postgres", "client_api": "api"}
        if link not in names:
            raise UsageError(f"unknown link {link!r}: use one of {', '.join(names)}")
        url = self.published("proxy", TOXIPROXY_PORT) if "proxy" in self._services else None
        if url is None:
            return super().proxy_for(link)
        return ProxyLink(toxiproxy_url=f"http://{url}", proxy=names[link], link=link)

    @contextlib.contextmanager
    def ensure_proxy(self, say: Say = print) -> Iterator[ProxyHops]:
        """The composed stack has Toxiproxy in place from the start; nothing to add or undo."""
        if "proxy" not in self._services:
            with super().ensure_proxy(say) as hops:  # raises CapabilityMissing
                yield hops
            return
        toxiproxy = self.published("proxy", TOXIPROXY_PORT)
        proxied = self.published("proxy", PROXIED_API_PORT)
        proxied_db = self.published("proxy", PROXIED_DB_PORT)
        if toxiproxy is None or proxied is None or proxied_db is None:
            raise UsageError(
                f"{self.name}: toxiproxy's ports {TOXIPROXY_PORT}, {PROXIED_API_PORT} and "
                f"{PROXIED_DB_PORT} are not published on the host (system/compose.yaml's "
                "netns service publishes them)"
            )
        # the app's DATABASE_URL (127.0.0.1:15432 in its network namespace) at the port that
        # bridges this machine to the same proxy
        app = urlsplit(self.container_env("api")["DATABASE_URL"])
        auth = app.netloc.rpartition("@")[0]
        yield ProxyHops(
            toxiproxy_url=f"http://{toxiproxy}",
            app_dsn=app._replace(netloc=f"{auth}@{proxied_db}").geturl(),
            api_url=f"http://{proxied}",
        )

    @contextlib.contextmanager
    def ensure_data_fs(self, size: str, say: Say = print) -> Iterator[Path]:
        """The models volume is a size-limited tmpfs (compose.yaml `NF_MODELS_SIZE`): its path
        in the api container, filled through `files("api")`; `size` is the compose file's."""
        models = self.endpoints.models_dir or HOME / "models"
        done = self.exec("api", ["sh", "-c", 'stat -f -c %T "$1"', "sh", str(models)])
        if done.stdout.strip() != "tmpfs":
            raise CapabilityMissing(
                f"target {self.name!r} has no size-limited filesystem at {models} in its api "
                "container (compose.yaml mounts a tmpfs volume there)"
            )
        yield Path(models)
