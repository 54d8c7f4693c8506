"""A fleet of two systemd hosts over ssh (runbook §7's app servers): checks of one machine run
on each host, and a stopped ts-forecast on the second host fails its checks there alone."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsdrill.plugin.waiting import first
from opsdrill.targets import parse_spec
from tests.host.conftest import Host, health_status
from tests.host.test_host_target import outcomes, run_checks

pytestmark = [pytest.mark.host, pytest.mark.fleet]  # its quick variant: tests/test_fleet.py

PER_HOST = {
    "checks/test_daily.py::test_1_every_service_is_running",
    "checks/test_daily.py::test_2_disk_usage_below_thresholds",
    "checks/test_daily.py::test_7_memory_usage_below_threshold",
    "checks/test_errors_and_runs.py::test_error_log_has_no_critical_in_the_last_hour",
    "checks/test_monthly.py::test_secrets_are_not_on_command_lines",
    "checks/test_monthly.py::test_no_group_or_world_writable_files",
}
FILES = sorted({test.split("::")[0] for test in PER_HOST})


def fleet_file(first_host: Host, second: Host, tmp_path: Path) -> Path:
    """The first host's production target file, with the second as another api host; one
    known_hosts holds both hosts' keys, recorded when they were made."""
    known = tmp_path / "known_hosts"
    known.write_text((first_host.dir / "known_hosts").read_text()
                     + (second.dir / "known_hosts").read_text())  # fmt: skip
    path = first_host.target_file("fleet", production=True, known_hosts=str(known))
    with path.open("a") as f:
        f.write(
            f'[[api_hosts]]\nname = "staging-2"\nhost = "ssh://ops@127.0.0.1:'
            f'{second.ports["ssh"]}"\napi_url = "http://127.0.0.1:{second.ports["api"]}"\n'
        )
    return path


def test_checks_of_one_machine_run_on_each_host_of_a_fleet(
    systemd_host: Host, second_api_host: Host, tmp_path: Path
) -> None:
    spec = str(fleet_file(systemd_host, second_api_host, tmp_path))
    done = run_checks(systemd_host, spec, *FILES, "-m", "readonly and not slow")
    passed = outcomes(done.stdout, "PASSED")
    assert done.returncode == 0, f"the fleet failed on healthy hosts:\n{done.stdout[-4000:]}"
    want = {f"{test}[{host}]" for test in PER_HOST for host in ("fleet", "staging-2")}
    assert want <= passed, f"not run on every host: {sorted(want - passed)}"
    backups = [t for t in passed if t.startswith("checks/test_daily.py::test_8_")]
    assert len(backups) == 1, f"the backup check looks at the first host, once: {backups}"

    key = str(systemd_host.dir / "id_ed25519")  # the fleet's one key
    second = parse_spec(str(second_api_host.target_file("h2", production=False, ssh_key=key)))
    second.allow_destructive = True
    second.service("api").stop()
    try:
        out = run_checks(systemd_host, spec, "checks/test_daily.py").stdout
    finally:
        second.service("api").start()
        first(lambda: health_status(second.endpoints.api_url) == 200, 120, "staging-2 back")
    service_check = "checks/test_daily.py::test_1_every_service_is_running"
    failed = outcomes(out, "FAILED") | outcomes(out, "ERROR")
    assert failed == {f"{service_check}[staging-2]"}, out[-3000:]
    assert "services not running on staging-2: api" in out
    assert f"{service_check}[fleet]" in outcomes(out, "PASSED")
