"""The host target over ssh: access, units, and the seam on a real systemd host."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from opsdrill.errors import DestructiveRefused, PrivilegeError, UsageError
from opsdrill.targets import parse_spec
from tests.host.conftest import ROOT, Host, health_status, poll

pytestmark = pytest.mark.host


def test_ssh_reaches_the_host_as_ops_with_systemd_running(systemd_host: Host) -> None:
    tgt = systemd_host.target()
    tgt.check_units()
    assert tgt.run(["id", "-un"]).stdout.strip() == "ops"
    assert tgt.unit_property("ts-forecast", "ActiveState") == "active"
    assert tgt.unit_property("postgresql@15-main", "ActiveState") == "active"
    assert tgt.unit_user("api") == "ts-forecast"


def run_checks(systemd_host: Host, target_file: str, *extra: str) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "pytest", "checks", "--target", target_file, "-q", "-rA",
            "-p", "no:cacheprovider", "-m", "not slow", *extra]  # fmt: skip
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, **systemd_host.env})  # fmt: skip


def outcomes(out: str, word: str) -> set[str]:
    return {ln.split()[1] for ln in out.splitlines() if ln.startswith(word + " ")}


def test_smoke_over_ssh_passes_on_a_healthy_host_and_writes_nothing(systemd_host: Host) -> None:
    """The scheduled smoke: a production target file, every read-only check over ssh."""
    spec = systemd_host.target_file("prod-smoke", production=True)
    t0 = time.monotonic()
    done = run_checks(systemd_host, str(spec))
    wall = time.monotonic() - t0
    print(f"\n[host] smoke over ssh: {wall:.1f} s")
    assert done.returncode == 0, f"smoke failed on a healthy host:\n{done.stdout[-4000:]}"
    assert len(outcomes(done.stdout, "PASSED")) >= 20, done.stdout[-2000:]


def test_a_stopped_app_fails_exactly_the_service_checks(systemd_host: Host) -> None:
    tgt = systemd_host.target("staging-stop", production=False)
    tgt.allow_destructive = True
    spec = systemd_host.target_file("prod-stop", production=True)
    healthy = outcomes(run_checks(systemd_host, str(spec)).stdout, "FAILED")
    tgt.service("api").stop()
    try:
        failed = outcomes(run_checks(systemd_host, str(spec)).stdout, "FAILED")
    finally:
        tgt.service("api").start()
        poll(lambda: health_status(tgt.endpoints.api_url) == 200, 120, "ts-forecast back")
    assert not healthy
    assert failed, "a stopped ts-forecast must fail the service checks"
    assert all(("service" in f or "health" in f or "api" in f) for f in failed), failed


def test_production_target_refuses_service_control(systemd_host: Host) -> None:
    tgt = systemd_host.target("prod-guard", production=True)
    tgt.allow_destructive = True
    with pytest.raises(DestructiveRefused):
        tgt.service("api").kill()
    assert tgt.unit_property("ts-forecast", "ActiveState") == "active"


@pytest.mark.parametrize(("service", "unit"), [("db", "postgresql@15-main"),
                                               ("api", "ts-forecast")])  # fmt: skip
def test_sigkill_is_seen_and_recovered_by_restart(
    systemd_host: Host, service: str, unit: str
) -> None:
    """`systemctl kill -s SIGKILL`, /health notices, §5.3.1's `systemctl restart` recovers."""
    tgt = systemd_host.target("staging-kill")
    tgt.allow_destructive = True
    api = tgt.endpoints.api_url
    t0 = time.monotonic()
    tgt.service(service).kill()
    poll(lambda: health_status(api) != 200, 60, f"/health noticing the killed {unit}", 0.1)
    mttd = time.monotonic() - t0
    tgt.service(service).restart()
    if service == "db":
        tgt.service("api").restart()  # §5.3.1 after the database: the app reconnects fresh
    poll(lambda: health_status(api) == 200, 120, f"/health after restarting {unit}")
    mttr = time.monotonic() - t0
    print(f"\n[host] {service} SIGKILL: MTTD {mttd:.1f} s, MTTR {mttr:.1f} s")
    assert tgt.unit_property(unit, "ActiveState") == "active"


@pytest.mark.xfail(
    strict=True,
    reason="not yet: on this cgroup v1 machine an idle app under MemoryMax=48M was not "
    "OOM-killed within 60 s; the drill needs a training run under the limit",
)
def test_memory_max_ooms_the_app_and_is_undone(systemd_host: Host) -> None:
    tgt = systemd_host.target("staging-oom")
    tgt.allow_destructive = True
    before = tgt.oom_kills("api")
    t0 = time.monotonic()
    previous = tgt.set_memory_limit("api", 48 * 1024 * 1024)
    try:
        poll(lambda: tgt.oom_kills("api") > before
             or tgt.unit_property("ts-forecast", "NRestarts") not in ("", "0"),
             60, "an OOM kill in ts-forecast's cgroup")  # fmt: skip
        mttd = time.monotonic() - t0
    finally:
        tgt.set_memory_limit("api", previous)
    assert tgt.unit_property("ts-forecast", "MemoryMax") == "infinity"
    tgt.service("api").restart()
    poll(lambda: health_status(tgt.endpoints.api_url) == 200, 120, "ts-forecast after OOM")
    print(f"\n[host] MemoryMax OOM: seen in {mttd:.1f} s, recovered {time.monotonic() - t0:.1f} s")


def test_user_errors_are_one_sentence(systemd_host: Host, tmp_path: Path) -> None:
    other = tmp_path / "other"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    cases = {
        "refused key": ({"ssh_key": str(other)}, PrivilegeError, "refused the key"),
        "unknown host key": ({"known_hosts": str(empty)}, PrivilegeError, "known_hosts"),
        "wrong unit": ({"api_unit": "ts-forecats"}, UsageError, "ts-forecats"),
        "missing key file": ({"ssh_key": "/nonexistent/key"}, UsageError, "does not exist"),
    }
    for name, (extra, cls, words) in cases.items():
        spec = systemd_host.target_file(f"bad-{name.replace(' ', '-')}", production=True, **extra)
        with pytest.raises(cls) as err:
            parse_spec(str(spec)).check_units()  # type: ignore[attr-defined]
        assert words in str(err.value) and "\n" not in str(err.value), (name, err.value)
    tgt = systemd_host.target("no-sudo")
    with pytest.raises(PrivilegeError, match="sudoers"):
        tgt.systemctl("restart", "cron")
