"""The production guard through the front door: each refusal, its message and its exit code.

Target files describe either a real HTTP server on this machine (for what must run) or an
unreachable URL (for what must be refused before the target is ever contacted: a refusal that
needed the target would end the session with "does not answer" instead). Runs that reach the
server go in a subprocess: an in-process run would drop the httpcore it imported on its way
out, and httpx in later in-process runs would no longer recognise its errors.
"""

from __future__ import annotations

import http.server
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from opsdrill.errors import DestructiveRefused
from opsdrill.exitcodes import ExitCode
from opsdrill.targets import parse_spec
from opsdrill.targets.base import CAPABILITIES

REPO = Path(__file__).resolve().parents[1]
UNREACHABLE = "http://127.0.0.1:9"


def target_file(pytester: pytest.Pytester, production: bool, url: str = UNREACHABLE) -> str:
    prod = "true" if production else "false"
    pytester.makefile(
        ".toml", target=f'name = "t"\nproduction = {prod}\n[endpoints]\napi_url = "{url}"\n'
    )
    return "target.toml"


@pytest.fixture
def http_url() -> Iterator[str]:
    """A real HTTP server: the session's reachability probe gets an answer (a 501)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def test_destructive_is_refused_on_production_even_with_allow_destructive(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile("import pytest\n@pytest.mark.destructive\ndef test_x(target): assert 0\n")
    spec = target_file(pytester, production=True)
    result = pytester.runpytest("--target", spec, "--allow-destructive", "-rs")
    result.assert_outcomes(skipped=1)
    assert result.ret == ExitCode.OK
    result.stdout.fnmatch_lines(
        ["*refused on production target 't': destructive tests never run on production, even "
         "with --allow-destructive; a production game day needs a target file that says "
         "production = false*"]
    )  # fmt: skip


def test_sandbox_is_refused_on_production(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("import pytest\n@pytest.mark.sandbox\ndef test_x(target): assert 0\n")
    result = pytester.runpytest("--target", target_file(pytester, production=True), "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*refused on production target 't': this test writes*"])


LOAD = "import pytest\n@pytest.mark.load\ndef test_gate(target): assert target.production\n"


def test_load_is_refused_on_production_without_the_flag(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(LOAD)
    result = pytester.runpytest("--target", target_file(pytester, production=True), "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*this test sends load; pass --allow-load-on-production*"])


def test_load_runs_on_production_with_the_flag(pytester: pytest.Pytester, http_url: str) -> None:
    pytester.makepyfile(LOAD)
    spec = target_file(pytester, production=True, url=http_url)
    result = pytester.runpytest_subprocess("--target", spec, "--allow-load-on-production")
    result.assert_outcomes(passed=1)


def test_unmarked_test_reaching_production_through_api_fails_collection(
    pytester: pytest.Pytester,
) -> None:
    """Through the root conftest's `api` fixture, not only `target` itself."""
    pytester.makeconftest((REPO / "conftest.py").read_text())
    pytester.makepyfile(
        "import pytest\n"
        "@pytest.mark.readonly\ndef test_marked(api): pass\n"
        "def test_helper(): pass\n"
        "def test_sneaky(api): api.post('/runs')\n"
    )
    spec = target_file(pytester, production=True)
    for xdist in ([], ["-n", "2"]):  # an exit inside a worker would only crash it
        result = pytester.runpytest("--target", spec, *xdist)
        assert result.ret == (ExitCode.USAGE if not xdist else ExitCode.FAILED)
        result.stdout.fnmatch_lines(
            ["*ERROR collecting test_unmarked_test_reaching_production*",
             "opsdrill: unmarked test would touch production: mark it readonly, sandbox, "
             "destructive or load (target 't' says production = true): test_sneaky"]
        )  # fmt: skip
        out = result.stdout.str()
        assert "test_helper" not in out and "test_marked" not in out, "only the unmarked named"
        assert " passed" not in out and "does not answer" not in out, "nothing may have run"


def test_unmarked_test_runs_on_a_target_that_is_not_production(
    pytester: pytest.Pytester, http_url: str
) -> None:
    pytester.makepyfile("def test_x(target): assert not target.production\n")
    result = pytester.runpytest_subprocess("--target", target_file(pytester, False, url=http_url))
    result.assert_outcomes(passed=1)


def test_require_destructive_refuses_production_whatever_is_allowed(
    pytester: pytest.Pytester,
) -> None:
    target = parse_spec(str(pytester.path / target_file(pytester, production=True)))
    target.allow_destructive = True
    with pytest.raises(DestructiveRefused, match="production game day needs a target file"):
        target.require_destructive("stop db", allowed=True)
    staging = parse_spec(str(pytester.path / target_file(pytester, production=False)))
    staging.require_destructive("stop db", allowed=True)  # allowed off production
    with pytest.raises(DestructiveRefused, match="pass --allow-destructive"):
        staging.require_destructive("stop db", allowed=False)


DRILLS = """
import pytest

pytestmark = pytest.mark.destructive

@pytest.mark.fault("db_down", sig="SIGKILL")
def test_db_down(): pass

@pytest.mark.fault("cpu_hog")
def test_cpu_hog(): pass

@pytest.mark.fault("gpu_oom")
def test_gpu_oom(): pass
"""


def test_a_drill_is_refused_naming_the_capability_the_target_lacks(
    pytester: pytest.Pytester,
) -> None:
    """A file target keeps no fault journal: every drill is refused, one sentence each."""
    pytester.makepyfile(DRILLS)
    spec = target_file(pytester, production=False)
    result = pytester.runpytest("--target", spec, "--allow-destructive", "-rs")
    result.assert_outcomes(skipped=3)
    result.stdout.fnmatch_lines_random(
        ["*drill test_db_down (db_down) needs fault_journal, service_control, which target 't'*",
         "*drill test_cpu_hog (cpu_hog) needs exec, fault_journal, which target*",
         "*drill test_gpu_oom (gpu_oom) needs exec, fault_journal, gpu, service_files, which*"]
    )  # fmt: skip


def test_the_embedded_stack_offers_every_capability_but_a_gpu_it_lacks(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(DRILLS)
    local = parse_spec(f"local:{pytester.path / 'no-stack-needed'}")
    has_gpu = "gpu" in local.capabilities
    assert local.capabilities >= set(CAPABILITIES) - {"gpu"}
    result = pytester.runpytest("--target", f"local:{pytester.path / 'x'}",
                                "--allow-destructive", "-rs")  # fmt: skip
    if has_gpu:
        result.assert_outcomes(passed=3)
    else:
        result.assert_outcomes(passed=2, skipped=1)
        result.stdout.fnmatch_lines(["*drill test_gpu_oom (gpu_oom) needs gpu, which target*"])


def test_every_fault_kind_declares_needs_the_targets_know() -> None:
    """A fault's needs live on its class (read by the guard, the plan and the report): each
    names only capabilities a target can offer, and always the journal that undoes it."""
    import opsdrill.faults
    import opsdrill.targets.local  # its in-place parts register as faults

    ours = {
        k: cls
        for k, cls in opsdrill.faults.REGISTRY.items()
        if cls.__module__.startswith("opsdrill.")
    }
    assert len(ours) >= 23
    for kind, cls in ours.items():
        assert cls.needs <= set(CAPABILITIES), (kind, cls.needs - set(CAPABILITIES))
        assert "fault_journal" in cls.needs, kind
    assert "toxiproxy" in ours["net_latency"].needs
    assert "service_control" in ours["db_down"].needs


def run_repo_pytest(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", *args, "-p", "no:cacheprovider", "-q"],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def test_every_test_of_the_suites_is_marked(tmp_path: Path) -> None:
    """checks/, chaos/ and load/ collect on production: none is unmarked."""
    spec = tmp_path / "prod.toml"
    spec.write_text(f'production = true\n[endpoints]\napi_url = "{UNREACHABLE}"\n')
    done = run_repo_pytest("checks", "chaos", "load", "--target", str(spec), "--collect-only")
    assert done.returncode == ExitCode.OK, done.stdout[-3000:] + done.stderr[-2000:]
    assert "unmarked test" not in done.stdout


def test_the_real_drills_are_refused_on_a_file_target_without_an_attribute_error(
    tmp_path: Path,
) -> None:
    spec = tmp_path / "staging.toml"
    spec.write_text(f'production = false\n[endpoints]\napi_url = "{UNREACHABLE}"\n')
    done = run_repo_pytest("chaos", "--target", str(spec), "--allow-destructive", "-rs")
    assert done.returncode == ExitCode.OK, done.stdout[-3000:]
    refused = [
        line for line in done.stdout.splitlines()
        if "fault_journal" in line and "which target 'staging' does not offer" in line
    ]  # fmt: skip
    skipped = [line for line in done.stdout.splitlines() if line.startswith("SKIPPED")]
    assert refused == skipped and len(refused) >= 16, done.stdout[-3000:]  # every drill, refused
    assert "AttributeError" not in done.stdout and " passed" not in done.stdout
