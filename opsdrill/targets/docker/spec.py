"""The docker target's spec (`docker:PROJECT[,key=ENV_NAME...]`) and its Engine API client."""

from __future__ import annotations

import os
from typing import Any

from opsdrill.errors import (
    MissingDependency,
    UsageError,
)
from opsdrill.targets.docker.sdk import docker

__all__ = [
    "PROJECT_LABEL",
    "SECRET_KEYS",
    "SERVICE_ALIASES",
    "SERVICE_LABEL",
    "client",
    "parse_docker_spec",
]


SECRET_KEYS = ("api_key_env", "dsn_env", "admin_dsn_env")


def parse_docker_spec(rest: str) -> tuple[str, dict[str, str]]:
    """`PROJECT[,key=ENV_NAME...]` -> (project, {key: env name}); one sentence when malformed."""
    project, *opts = rest.split(",")
    if not project:
        raise UsageError(
            "target 'docker:' needs a Compose project name, e.g. docker:ts-forecast "
            "(see `docker compose ls` or the -p you gave docker-compose)"
        )
    named: dict[str, str] = {}
    for opt in opts:
        key, sep, value = opt.partition("=")
        if not sep or key not in SECRET_KEYS or not value:
            raise UsageError(
                f"bad option {opt!r} in target docker:{rest}: use "
                f"{', '.join(k + '=ENV_NAME' for k in SECRET_KEYS)}"
            )
        named[key] = value
    return project, named


def client() -> Any:
    """A Docker API client from the environment (DOCKER_HOST), or one sentence why not."""
    try:
        client = docker.from_env(timeout=30)
        client.ping()
    except (docker.errors.DockerException, OSError):  # requests errors are OSErrors
        where = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
        raise MissingDependency(
            f"no Docker engine answers at {where}: start one "
            "(scripts/docker-engine.sh) or point DOCKER_HOST at it"
        ) from None
    return client


PROJECT_LABEL = "com.docker.compose.project"


SERVICE_LABEL = "com.docker.compose.service"


#: compose service name -> the name every target uses (opsdrill.targets.model.SERVICE_NAMES)
SERVICE_ALIASES = {
    "db": "db",
    "postgres": "db",
    "api": "api",
    "app": "api",
    "toxiproxy": "proxy",
    "proxy": "proxy",
    "prometheus": "prometheus",
    "alertmanager": "alertmanager",
    "node-exporter": "node_exporter",
    "postgres-exporter": "postgres_exporter",
}
