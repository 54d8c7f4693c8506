"""The Docker SDK, imported in one place for the backend: where it is missing, that is one
sentence saying what to install, not an ImportError from whichever module came first."""

from opsdrill.errors import MissingDependency

try:
    import docker  # type: ignore[import-untyped]
    import docker.errors  # type: ignore[import-untyped]
except ImportError:
    raise MissingDependency(
        "the docker target needs the `docker` package: pip install docker"
    ) from None

__all__ = ["docker"]
