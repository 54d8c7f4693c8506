"""The composed stack for the Docker-target suite: engine, images and a compose project.

The session starts an engine when none answers (scripts/docker-engine.sh), builds the images
that are missing and reuses the rest (scripts/build-images.sh), brings system/compose.yaml up
under a project name of its own, loads the series and trains the first model through the API,
and takes it down with its volumes at the end. OPSDRILL_DOCKER_PROJECT reuses a project you
keep running while iterating (it is then left up).
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from opsdrill.plugin.waiting import first
from opsdrill.targets import Target, parse_spec

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "system" / "compose.yaml"
FIRST_MODEL = {"series_id": "airpassengers", "model_name": "MLP", "horizon": 12,
               "run_name": "opsdrill-first-model"}  # fmt: skip

pytestmark = pytest.mark.docker


def compose_command() -> list[str]:
    """Compose v2 when the CLI has it, else Debian's docker-compose 1.29."""
    if subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    if path := shutil.which("docker-compose"):
        return [path]
    pytest.skip(
        "neither `docker compose` nor docker-compose is here: apt-get install docker-compose"
    )


@dataclass
class ComposedStack:
    project: str
    env: dict[str, str]
    compose: list[str]
    timings: dict[str, float]

    @property
    def spec(self) -> str:
        return f"docker:{self.project}"

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        argv = [*self.compose, "-p", self.project, "-f", str(COMPOSE_FILE), *args]
        done = subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=600)
        if check and done.returncode != 0:
            raise AssertionError(f"{' '.join(args)} failed: {done.stderr.strip()[-800:]}")
        return done

    def target(self) -> Target:
        return parse_spec(self.spec)


def health_status(url: str) -> int | None:
    """GET /health's status code, None when nothing answers."""
    try:
        return httpx.get(f"{url}/health", timeout=3).status_code
    except httpx.HTTPError:
        return None


def _images() -> dict[str, str]:
    done = subprocess.run([str(ROOT / "scripts" / "build-images.sh")], capture_output=True,
                          text=True, timeout=3600)  # fmt: skip
    if done.returncode == 3:
        pytest.skip(f"no Docker engine or image inputs here: {done.stderr.strip()[-300:]}")
    assert done.returncode == 0, f"build-images.sh failed: {done.stderr.strip()[-800:]}"
    return dict(line.split("=", 1) for line in done.stdout.split() if "=" in line)


@pytest.fixture(scope="session")
def composed() -> Iterator[ComposedStack]:
    timings: dict[str, float] = {}
    t0 = time.monotonic()
    images = _images()
    timings["images"] = time.monotonic() - t0
    keep = os.environ.get("OPSDRILL_DOCKER_PROJECT")
    project = keep or f"opsdrill-test-{os.getpid()}"
    env = {
        **os.environ,
        **images,
        "POSTGRES_PASSWORD": os.environ.get("POSTGRES_PASSWORD", secrets.token_urlsafe(16)),
        "NF_DB_PASSWORD": os.environ.get("NF_DB_PASSWORD", secrets.token_urlsafe(16)),
        "NF_API_KEY": os.environ.get("NF_API_KEY", secrets.token_urlsafe(16)),
    }
    stack = ComposedStack(project, env, compose_command(), timings)
    try:
        t0 = time.monotonic()
        stack.run("up", "-d")
        target = stack.target()
        first(lambda: target.service("api").healthy(), 300, "the api container healthy")
        timings["up"] = time.monotonic() - t0
        t0 = time.monotonic()
        _first_data(stack)
        timings["first_data"] = time.monotonic() - t0
        print(f"\n[composed] {project}: " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()))
        yield stack
    finally:
        if not keep:
            stack.run("down", "-v", "--remove-orphans", check=False)


def _first_data(stack: ComposedStack) -> None:
    """Series data, one trained model and one backup, through the front door as a user gives
    them to a composed stack (`opsdrill up --target docker:P`); a kept project has them."""
    path = os.pathsep.join([str(ROOT), str(ROOT / "system"), os.environ.get("PYTHONPATH", "")])
    done = subprocess.run([sys.executable, "-m", "opsdrill", "up", "--target", stack.spec],
                          cwd=ROOT, env={**stack.env, "PYTHONPATH": path}, capture_output=True,
                          text=True, timeout=1200)  # fmt: skip
    assert done.returncode == 0, f"opsdrill up --target {stack.spec}: {done.stderr[-1500:]}"
    assert "first backup" in done.stdout, done.stdout


@pytest.fixture(scope="session")
def docker_target(composed: ComposedStack) -> Target:
    target = composed.target()
    target.allow_destructive = True
    return target
