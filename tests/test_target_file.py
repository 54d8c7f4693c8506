"""Target files: other deployments described in TOML/YAML, reached through testinfra."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import pytest

from opsdrill.errors import DestructiveRefused, UsageError
from opsdrill.exitcodes import ExitCode
from opsdrill.processes import spawn
from opsdrill.targets import parse_spec

GOOD = """
name = "prod-eu"
production = true
host = "local://"
[endpoints]
api_url = "http://127.0.0.1:9/"
dsn_env = "OPSDRILL_TEST_DSN"
backups_dir = "/var/backups/ts"
[services.api]
pidfile = "{pidfile}"
"""


def write(tmp_path: Path, text: str, name: str = "t.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_good_file_with_a_pidfile_service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPSDRILL_TEST_DSN", "postgresql://ro@db/ts")
    ref = spawn([sys.executable, "-c", "import time; time.sleep(30)"], log=tmp_path / "log")
    pidfile = tmp_path / "app.pid"
    pidfile.write_text(f"{ref.pid}\n")
    try:
        target = parse_spec(str(write(tmp_path, GOOD.format(pidfile=pidfile))))
        assert target.name == "prod-eu" and target.production
        assert target.endpoints.api_url == "http://127.0.0.1:9"
        assert target.endpoints.backups_dir == Path("/var/backups/ts")
        api = target.service("api")
        assert api.is_running() and api.pid() == ref.pid
        with pytest.raises(DestructiveRefused, match="refusing to kill api on production"):
            api.kill(signal.SIGKILL)
        assert ref.alive(), "a refused kill must not signal anything"
        target.allow_destructive = True
        with pytest.raises(DestructiveRefused, match="production game day needs a target file"):
            api.kill(signal.SIGKILL)  # --allow-destructive never lifts it on production
        target.production = False
        api.kill(signal.SIGKILL)
        assert ref.wait_gone(5)
        assert not api.is_running()
    finally:
        ref.terminate(1)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name = 'x'\n", "needs an [endpoints] table with at least api_url"),
        ("[endpoints]\napi_url='http://x'\nfoo=1\n", "unknown endpoint key(s) foo"),
        ("[endpoints]\napi_url='http://x'\ndsn='postgresql://u:pw@h/db'\n", "environment"),
        ("[endpoints]\napi_url='http://x'\ndsn_env='OPSDRILL_NOT_SET_X'\n", "is not set"),
        ("[endpoints]\napi_url='http://x'\n[services.web]\nsystemd='x'\n", "unknown service 'web'"),
        ("[endpoints]\napi_url='http://x'\n[services.api]\nfoo='x'\n", "needs systemd = UNIT"),
        ("[endpoints\n", "does not parse"),
    ],
)
def test_bad_files_are_one_clear_error(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(UsageError, match=None) as info:
        parse_spec(str(write(tmp_path, text)))
    assert message in str(info.value)
    assert "\n" not in str(info.value).strip()


def test_yaml_target_file(tmp_path: Path) -> None:
    path = write(
        tmp_path, "name: y\nproduction: false\nendpoints:\n  api_url: http://h\n", "t.yaml"
    )
    target = parse_spec(str(path))
    assert target.name == "y" and not target.production


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        parse_spec(str(tmp_path / "nope.toml"))


def test_unreachable_target_ends_session_with_exit_2(pytester: pytest.Pytester) -> None:
    pytester.makefile(".toml", target='[endpoints]\napi_url = "http://127.0.0.1:9"\n')
    pytester.makepyfile(
        "import pytest\npytestmark = pytest.mark.readonly\n"
        "def test_a(target): pass\ndef test_b(target): pass\n"
    )
    result = pytester.runpytest("--target", "target.toml")
    assert result.ret == ExitCode.USAGE
    result.stdout.fnmatch_lines(["*the API at http://127.0.0.1:9 does not answer*"])


def test_production_target_skips_sandbox_tests(pytester: pytest.Pytester) -> None:
    """Read-only checks run on production; anything that writes skips with the reason."""
    import http.server
    import threading

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        pytester.makefile(".toml", target=f'[endpoints]\napi_url = "http://127.0.0.1:{port}"\n')
        pytester.makepyfile(
            "import pytest\n"
            "@pytest.mark.readonly\ndef test_read(target): pass\n"
            "@pytest.mark.sandbox\ndef test_write(target): assert 0\n"
            "@pytest.mark.destructive\ndef test_break(target): assert 0\n"
        )
        result = pytester.runpytest("--target", "target.toml", "--allow-destructive", "-rs")
        result.assert_outcomes(passed=1, skipped=2)
        result.stdout.fnmatch_lines(["*refused on production target 'target'*"])
    finally:
        server.shutdown()


def test_spec_builds_the_target_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A game day hands its suites `--target SPEC`: a file target's spec is its path, not its
    name (with the name, every suite of `opsdrill gameday --target FILE` ended at collection)."""
    monkeypatch.setenv("OPSDRILL_TEST_DSN", "postgresql://ro@db/ts")
    path = write(tmp_path, GOOD.format(pidfile=tmp_path / "app.pid"))
    target = parse_spec(str(path))
    again = parse_spec(target.spec)
    assert target.spec == str(path.absolute()) and again.name == target.name == "prod-eu"
    assert again.endpoints == target.endpoints


def _host_file(tmp_path: Path, extra: str = "") -> Path:
    for name in ("key", "known_hosts"):
        (tmp_path / name).write_text("")
    path = tmp_path / "staging.toml"
    path.write_text(
        'name = "staging"\nhost = "ssh://ops@127.0.0.1:2222"\nssh_key = "key"\n'
        f'known_hosts = "known_hosts"\n{extra}[endpoints]\napi_url = "http://127.0.0.1:1"\n'
        'dsn = "postgresql://x@127.0.0.1:1/db"\n[services.api]\nsystemd = "ts-forecast"\n'
    )
    return path


def test_a_host_fills_only_the_data_filesystem_its_file_names(tmp_path: Path) -> None:
    """No `data_filesystem`: the disk-full drill's capability is absent (skipped at
    collection, naming it); a relative path is one sentence naming the key."""

    without = parse_spec(str(_host_file(tmp_path)))
    assert "data_filesystem" not in without.capabilities
    assert "exec" in without.capabilities
    named = parse_spec(str(_host_file(tmp_path, 'data_filesystem = "/opt/ts-forecast/models"\n')))
    assert "data_filesystem" in named.capabilities
    with pytest.raises(UsageError, match="data_filesystem must be an absolute path"):
        parse_spec(str(_host_file(tmp_path, 'data_filesystem = "models"\n')))


def test_a_host_has_toxiproxy_only_where_its_file_says(tmp_path: Path) -> None:
    """`[toxiproxy]`: the network drills' capability and hops; absent, bad or half-served,
    one sentence naming the key or the missing proxy."""
    import json
    import urllib.request

    from opsdrill.errors import CapabilityMissing
    from opsdrill.toxiproxy import ToxiproxyServer

    assert "toxiproxy" not in parse_spec(str(_host_file(tmp_path))).capabilities
    with ToxiproxyServer() as server:
        table = (
            f'toxiproxy = {{url = "{server.url}", proxied_api_url = "http://127.0.0.1:8001", '
            'proxied_db = "127.0.0.1:15433"}\n'
        )
        host = parse_spec(str(_host_file(tmp_path, table)))
        assert "toxiproxy" in host.capabilities
        link = host.proxy_for("app_db")
        assert (link.toxiproxy_url, link.proxy) == (server.url, "postgres")
        with (
            pytest.raises(CapabilityMissing, match="has no proxy api, postgres"),
            host.ensure_proxy(lambda _: None),
        ):
            pass
        for name, upstream in (("postgres", "127.0.0.1:5432"), ("api", "127.0.0.1:8000")):
            request = urllib.request.Request(
                f"{server.url}/proxies",
                data=json.dumps({"name": name, "upstream": upstream}).encode(),
                method="POST",
            )
            urllib.request.urlopen(request, timeout=5).close()
        with host.ensure_proxy(lambda _: None) as hops:
            # the target's DSN, its credentials kept, at the proxied address
            assert hops.app_dsn == "postgresql://x@127.0.0.1:15433/db"
            assert hops.api_url == "http://127.0.0.1:8001"
    with pytest.raises(CapabilityMissing, match="does not answer"), host.ensure_proxy(print):
        pass
    for bad, said in (
        ('toxiproxy = {url = "http://h:1"}\n', "needs proxied_api_url"),
        ('toxiproxy = {url = "h:1", proxied_api_url = "http://h:2", proxied_db = "h:3"}\n',
         "url must be an http:// URL"),
        ('toxiproxy = {url = "http://h:1", proxied_api_url = "http://h:2", proxied_db = "h"}\n',
         "proxied_db must be HOST:PORT"),
        ('toxiproxy = {url = "http://h:1", proxied_api_url = "http://h:2", proxied_db = "h:3", '
         'api = "x"}\n', "unknown key 'api'"),
    ):  # fmt: skip
        with pytest.raises(UsageError, match=said):
            parse_spec(str(_host_file(tmp_path, bad)))


def test_a_services_url_comes_from_the_file_or_the_environment_and_prints_masked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from opsdrill.targets.model import public_url

    def with_redis(spec: str) -> Path:
        path = _host_file(tmp_path)
        path.write_text(path.read_text() + f'[services.redis]\nsystemd = "redis-server"\n{spec}')
        return path

    monkeypatch.setenv("REDIS_URL_FOR_TEST", "redis://:s3cret@127.0.0.1:6380/0")
    host = parse_spec(str(with_redis('url_env = "REDIS_URL_FOR_TEST"\n')))
    url = host.service("redis").url
    assert url == "redis://:s3cret@127.0.0.1:6380/0"  # what a client needs
    assert public_url(url) == "redis://:***@127.0.0.1:6380/0"  # what may be printed
    plain = parse_spec(str(with_redis('url = "redis://127.0.0.1:6380/0"\n')))
    assert public_url(plain.service("redis").url) == "redis://127.0.0.1:6380/0"
    for spec, said in (
        ('url = "redis://:pw@127.0.0.1:6380/0"\n', "password in the environment"),
        ('url_env = "NOT_SET_FOR_TEST"\n', r"\$NOT_SET_FOR_TEST, which is not set"),
        ("port = 6380\n", "unknown key 'port'"),
    ):
        with pytest.raises(UsageError, match=said):
            parse_spec(str(with_redis(spec)))
