"""A fleet: a target file listing more api hosts (runbook §7's app servers behind a balancer).

Checks of one machine (the `machine` fixture) run once per host with the host in their id,
the rest once; the runbook coverage keeps each host's result; a mistake in the file's
api_hosts is one sentence naming it.
"""

from __future__ import annotations

import http.server
import json
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from opsdrill.errors import UsageError
from opsdrill.processes import spawn
from opsdrill.targets import parse_spec

FLEET = """
name = "fleet"
production = true
host = "local://"
[endpoints]
api_url = "http://127.0.0.1:{port}"
home = "/opt/ts-forecast"
[services.api]
pidfile = "{alive}"
[[api_hosts]]
name = "fleet-2"
host = "local://"
api_url = "http://127.0.0.1:{port}/"
[api_hosts.services.api]
pidfile = "{dead}"
"""


@pytest.fixture
def answering_port() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()


def test_members_share_the_file_but_their_host_api_and_services(tmp_path: Path) -> None:
    path = tmp_path / "fleet.toml"
    path.write_text(FLEET.format(port=9, alive="/run/a.pid", dead="/run/b.pid"))
    target = parse_spec(str(path))
    first, second = target.fleet()
    assert first is target and second.name == "fleet-2"
    assert second.endpoints.api_url == "http://127.0.0.1:9"
    assert second.endpoints.home == target.endpoints.home and second.production
    assert set(second.services) == {"api"}
    target.allow_destructive = True
    assert all(m.allow_destructive for m in target.fleet()), "one session's rights hold on all"


def test_a_member_without_its_own_services_runs_the_files_api_unit(tmp_path: Path) -> None:
    path = tmp_path / "f.toml"
    path.write_text(
        'host = "local://"\n[endpoints]\napi_url = "http://a:1"\n'
        '[services.api]\nsystemd = "ts-forecast"\n[services.db]\nsystemd = "pg"\n'
        '[[api_hosts]]\nname = "b"\nhost = "local://"\napi_url = "http://b:1"\n'
    )
    (_, b) = parse_spec(str(path)).fleet()
    assert list(b.services) == ["api"] and b.service("api").systemd == "ts-forecast"


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ('api_hosts = "b"', "api_hosts must be a list of tables"),
        ('[[api_hosts]]\nname = "b"\nhost = "local://"', r'api_hosts #1 needs api_url = "\.\.\."'),
        ('[[api_hosts]]\nname = "t"\nhost = "local://"\napi_url = "http://b"',
         "api_hosts #1: the name 't' is taken"),
        ('[[api_hosts]]\nname = "b"\nhost = "ssh://ops@b"\napi_url = "http://b"',
         "a fleet is all ssh:// or none"),
        ('[[api_hosts]]\nname = "b"\nhost = "local://"\napi_url = "http://b"\nport = 1',
         r"api_hosts #1: unknown key\(s\) port"),
    ],
)  # fmt: skip
def test_bad_api_hosts_are_one_sentence(tmp_path: Path, entry: str, message: str) -> None:
    path = tmp_path / "t.toml"
    head = 'host = "local://"\n' if entry.startswith("[[") else f'host = "local://"\n{entry}\n'
    tail = f"\n{entry}\n" if entry.startswith("[[") else ""
    path.write_text(f'{head}[endpoints]\napi_url = "http://a:1"\n{tail}')
    with pytest.raises(UsageError, match=message):
        parse_spec(str(path))


def test_checks_of_one_machine_run_per_host_and_coverage_shows_each(
    pytester: pytest.Pytester, answering_port: int, tmp_path: Path
) -> None:
    """The api process runs on the first host only: its check fails on fleet-2 alone."""
    ref = spawn([sys.executable, "-c", "import time; time.sleep(60)"], log=tmp_path / "log")
    alive, dead = tmp_path / "alive.pid", tmp_path / "dead.pid"
    alive.write_text(f"{ref.pid}\n")
    dead.write_text("999999\n")  # above pid_max's default: never a live process
    try:
        pytester.makefile(".toml", target=FLEET.format(port=answering_port, alive=alive,
                                                       dead=dead))  # fmt: skip
        pytester.makepyfile(
            "import pytest\n"
            "pytestmark = [pytest.mark.readonly, pytest.mark.runbook('3.1.1')]\n"
            "def test_api_runs(machine): assert machine.service('api').is_running()\n"
            "def test_once(target, host): pass\n"
        )
        reports = tmp_path / "reports"
        result = pytester.runpytest_subprocess("--target", "target.toml", "-v",
                                    "--opsdrill-reports", str(reports))  # fmt: skip
        result.assert_outcomes(passed=2, failed=1)
        result.stdout.fnmatch_lines(["*test_api_runs?fleet? PASSED*",
                                     "*test_api_runs?fleet-2? FAILED*",
                                     "*test_once PASSED*",
                                     "*3.1.1*per host: fleet passed, fleet-2 failed*"])  # fmt: skip
        rows = json.loads((reports / "runbook-coverage.json").read_text())["procedures"]
        (row,) = [r for r in rows if r["procedure"] == "3.1.1"]
        assert row["hosts"] == {"fleet": "passed", "fleet-2": "failed"}
    finally:
        ref.terminate(1)


def test_one_machine_keeps_its_ids(pytester: pytest.Pytester, answering_port: int) -> None:
    pytester.makefile(
        ".toml", target=f'[endpoints]\napi_url = "http://127.0.0.1:{answering_port}"\n'
    )
    pytester.makepyfile("import pytest\n@pytest.mark.readonly\n"
                        "def test_m(machine, target): assert machine is target\n")  # fmt: skip
    result = pytester.runpytest_subprocess("--target", "target.toml", "-v")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*::test_m PASSED*"])
