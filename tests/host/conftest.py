"""A systemd host for the host-target suite, reached by ssh only, as a real machine would be.

The session builds or reuses the host image (scripts/build-host-image.sh), generates an ssh
key pair and the host's own key (so known_hosts holds it before the first connection:
StrictHostKeyChecking, never trust on first use), and starts the container without
--privileged on a bridge network of its own, every port published on 127.0.0.1 only. The seed
(keys, secrets) is mounted read-only for the host's first-boot unit, as cloud-init's would be.
After that, the tests reach the host by ssh and its published ports only.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from opsdrill.plugin.waiting import first
from opsdrill.targets import parse_spec
from opsdrill.targets.host.target import HostTarget

ROOT = Path(__file__).resolve().parents[2]
#: the app's models, on a tmpfs of their own in the host container (data_filesystem)
MODELS = "/opt/ts-forecast/models"
PORTS = {"ssh": 22, "api": 8000, "db": 5432, "prometheus": 9090, "alertmanager": 9093,
         "redis": 6379,
         # staging's Toxiproxy (system/host/toxiproxy-start.sh): its API, the API and the
         # database through it
         "toxiproxy": 8475, "proxied_api": 8001, "proxied_db": 15433}  # fmt: skip

pytestmark = pytest.mark.host


def health_status(url: str) -> int | None:
    try:
        return httpx.get(f"{url}/health", timeout=3).status_code
    except httpx.HTTPError:
        return None


def docker(*args: str, check: bool = True) -> str:
    done = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=300)
    if check and done.returncode != 0:
        raise AssertionError(f"docker {args[0]} failed: {done.stderr.strip()[-500:]}")
    return done.stdout.strip()


@dataclass
class Host:
    """The running host: where its target files and keys are, and how long it took."""

    dir: Path
    container: str
    ports: dict[str, int]
    env: dict[str, str]
    timings: dict[str, float]

    def target_file(self, name: str, *, production: bool, **extra: str) -> Path:
        """A target file for this host (examples/staging.toml's shape, this host's ports)."""
        lines = [
            f'name = "{name}"',
            f"production = {'true' if production else 'false'}",
            f'host = "ssh://ops@127.0.0.1:{self.ports["ssh"]}"',
            f'ssh_key = "{extra.get("ssh_key", self.dir / "id_ed25519")}"',
            f'known_hosts = "{extra.get("known_hosts", self.dir / "known_hosts")}"',
            'ops_command = "ts-forecast-ops"',
            'app_command = "ts-forecast-app"',
            f'data_filesystem = "{MODELS}"',
            "dedicated_host = false  # a container: its CPUs are the shared machine's",
            "[endpoints]",
            f'api_url = "http://127.0.0.1:{self.ports["api"]}"',
            'dsn_env = "OPSDRILL_HOST_DSN"',
            'admin_dsn_env = "OPSDRILL_HOST_ADMIN_DSN"',
            'api_key_env = "OPSDRILL_HOST_API_KEY"',
            f'prometheus_url = "http://127.0.0.1:{self.ports["prometheus"]}"',
            f'alertmanager_url = "http://127.0.0.1:{self.ports["alertmanager"]}"',
            'home = "/opt/ts-forecast"',
            f'models_dir = "{MODELS}"',
            'logs_dir = "/opt/ts-forecast/logs/app"',
            'backups_dir = "/var/backups/ts-forecast"',
            "[services.api]",
            f'systemd = "{extra.get("api_unit", "ts-forecast")}"',
            "[services.db]",
            'systemd = "postgresql@15-main"',
            "[services.prometheus]",
            'systemd = "prometheus"',
            "[services.alertmanager]",
            'systemd = "prometheus-alertmanager"',
            "[services.node_exporter]",
            'systemd = "prometheus-node-exporter"',
            "[services.postgres_exporter]",
            'systemd = "prometheus-postgres-exporter"',
            "[services.redis]",
            'systemd = "redis-server"',
            'url_env = "OPSDRILL_HOST_REDIS_URL"',
            "[services.proxy]  # the Toxiproxy between app and db (the network drills restart it)",
            'systemd = "ts-forecast-toxiproxy"',
            "[toxiproxy]",
            f'url = "http://127.0.0.1:{self.ports["toxiproxy"]}"',
            f'proxied_api_url = "http://127.0.0.1:{self.ports["proxied_api"]}"',
            f'proxied_db = "127.0.0.1:{self.ports["proxied_db"]}"',
        ]
        path = self.dir / f"{name}.toml"
        path.write_text("\n".join(lines) + "\n")
        return path

    def target(self, name: str = "staging", production: bool = False) -> HostTarget:
        tgt = parse_spec(str(self.target_file(name, production=production)))
        assert isinstance(tgt, HostTarget)
        return tgt


def _image() -> str:
    """$OPSDRILL_HOST_IMAGE as given (an image built earlier), else build or reuse one."""
    if given := os.environ.get("OPSDRILL_HOST_IMAGE"):
        return given
    done = subprocess.run([str(ROOT / "scripts" / "build-host-image.sh")], capture_output=True,
                          text=True, timeout=1800)  # fmt: skip
    if done.returncode == 3:
        pytest.skip(f"no Docker engine or image inputs here: {done.stderr.strip()[-300:]}")
    assert done.returncode == 0, f"build-host-image.sh failed: {done.stderr.strip()[-800:]}"
    return done.stdout.strip().rsplit("=", 1)[-1]


def _seed(home: Path, user_key: Path | None = None) -> dict[str, str]:
    """The user's key pair (or, for another host of a fleet, the first host's public key),
    the host's key, the secrets; known_hosts is written on start."""
    seed = home / "seed"
    seed.mkdir(parents=True)
    keys = [seed / "ssh_host_ed25519_key"]
    if user_key is None:
        keys.append(home / "id_ed25519")
        user_key = home / "id_ed25519.pub"
    for key in keys:
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)],
                       check=True)  # fmt: skip
    shutil.copy(user_key, seed / "authorized_keys")
    names = ("DB_PASSWORD", "ADMIN_PASSWORD", "API_KEY", "REDIS_PASSWORD")
    found = {n: secrets.token_urlsafe(16) for n in names}
    (seed / "secrets").write_text("".join(f"{k}={v}\n" for k, v in found.items()))
    os.chmod(seed / "secrets", 0o644)  # read by the host's root only: the mount is the host's
    return found


@contextmanager
def booted(image: str, tag: str, user_key: Path | None = None) -> Iterator[Host]:
    """A host container on a bridge network of its own, up to a healthy /health; removed with
    its network and seed on exit (unless $OPSDRILL_KEEP_HOST)."""
    timings: dict[str, float] = {}
    home = Path(f"/tmp/{tag}-{os.getpid()}")
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(mode=0o700)
    found = _seed(home, user_key)
    name = f"{tag}-test-{os.getpid()}"
    docker("network", "create", name)
    try:
        t0 = time.monotonic()
        publish = [a for p in PORTS.values() for a in ("-p", f"127.0.0.1::{p}")]
        # the models on a size-limited filesystem of their own (the target file's
        # data_filesystem), owned by the app's user, so the disk-full drill meets a real ENOSPC
        owner = (
            docker(
                "run",
                "--rm",
                "--entrypoint",
                "sh",
                image,
                "-c",
                "echo $(id -u ts-forecast),$(id -g ts-forecast)",
            )
            .strip()
            .split(",")
        )
        models = f"{MODELS}:size=256m,mode=0755,uid={owner[0]},gid={owner[1]}"
        docker("run", "-d", "--name", name, "--hostname", "ts-forecast-host", "--network", name,
               "--tmpfs", "/run", "--tmpfs", "/run/lock", "--tmpfs", models,
               "-v", "/sys/fs/cgroup:/sys/fs/cgroup:ro",
               "-v", f"{home / 'seed'}:/etc/opsdrill-seed:ro", *publish, image)  # fmt: skip
        ports = {
            svc: int(docker("port", name, f"{p}/tcp").splitlines()[0].rsplit(":", 1)[1])
            for svc, p in PORTS.items()
        }
        hostkey = (home / "seed" / "ssh_host_ed25519_key.pub").read_text().split()[:2]
        (home / "known_hosts").write_text(f"[127.0.0.1]:{ports['ssh']} {' '.join(hostkey)}\n")
        env = {
            "OPSDRILL_HOST_DSN": f"postgresql://nf_app:{found['DB_PASSWORD']}@127.0.0.1:"
            f"{ports['db']}/ts_forecast_system",
            "OPSDRILL_HOST_ADMIN_DSN": f"postgresql://postgres:{found['ADMIN_PASSWORD']}@"
            f"127.0.0.1:{ports['db']}/ts_forecast_system",
            "OPSDRILL_HOST_API_KEY": found["API_KEY"],
            "OPSDRILL_HOST_REDIS_URL": f"redis://:{found['REDIS_PASSWORD']}@127.0.0.1:"
            f"{ports['redis']}/0",
            "OPSDRILL_STATE_HOME": str(home / "state"),
        }
        api = f"http://127.0.0.1:{ports['api']}"
        first(lambda: health_status(api) == 200, 180, f"{name}'s ts-forecast /health")
        timings["boot"] = time.monotonic() - t0
        yield Host(home, name, ports, env, timings)
    finally:
        if not os.environ.get("OPSDRILL_KEEP_HOST"):
            docker("rm", "-f", "-v", name, check=False)
            docker("network", "rm", name, check=False)
            shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def systemd_host() -> Iterator[Host]:
    t0 = time.monotonic()
    image = _image()
    took = time.monotonic() - t0
    with booted(image, "host") as host:
        host.timings["image"] = took
        os.environ.update(host.env)
        t0 = time.monotonic()
        seeding = host.target("first-data")
        for args in (["train-now"], ["backup"]):  # a model and a backup, as `opsdrill up` has
            done = seeding.ops(*args)
            assert done.ok, f"ts-forecast-ops {args[0]} over ssh: {done.output()}"
        host.timings["first_data"] = time.monotonic() - t0
        print(f"\n[host] {host.container}: "
              + ", ".join(f"{k} {v:.0f} s" for k, v in host.timings.items()))  # fmt: skip
        yield host


@pytest.fixture(scope="session")
def second_api_host(systemd_host: Host) -> Iterator[Host]:
    """Another host of the image, for a fleet: it lets in the first host's key (one ops user
    and key for the fleet, as a fleet's hosts would); its own secrets stay its own."""
    with booted(_image(), "host2", user_key=systemd_host.dir / "id_ed25519.pub") as host:
        yield host
