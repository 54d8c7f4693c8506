"""The embedded stack's Prometheus files: rendered from production, shortened, and really firing.

Unit tests for the pure functions, then one end-to-end test that runs a real `prometheus` with a
rendered config and shortened rules against a tiny /metrics server, flips a metric and watches
the alert go pending → firing → resolved through the HTTP API. Last, the Compose file is checked
against the same service names, ports and rule file.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path, PurePosixPath

import pytest
import yaml

from opsdrill.durations import milliseconds, prometheus_spelling
from opsdrill.errors import MissingDependency, UsageError
from opsdrill.monitoring import compose_rules, prometheus_files
from opsdrill.monitoring.prometheus_files import (
    Shortening,
    render_alertmanager_config,
    render_prometheus_config,
    shorten_rules,
)
from opsdrill.plugin.waiting import until
from opsdrill.ports import free_port
from opsdrill.probes.prometheus import alert_state

SYSTEM_DIR = Path(__file__).resolve().parents[1] / "system"
needs_promtool = pytest.mark.skipif(
    shutil.which("promtool") is None,
    reason="promtool is not on PATH: install Prometheus (Debian: apt install prometheus)",
)


def render(tmp_path: Path, **overrides: object) -> dict:
    kwargs: dict = {
        "app_url": "http://127.0.0.1:18000",
        "postgres_exporter_url": "http://127.0.0.1:19187",
        "node_exporter_url": "127.0.0.1:19100",
        "alertmanager_url": "http://127.0.0.1:19093",
        "rules_path": tmp_path / "alerts.yml",
    }
    kwargs.update(overrides)
    return yaml.safe_load(render_prometheus_config(**kwargs))


def jobs(config: dict) -> dict[str, dict]:
    return {job["job_name"]: job for job in config["scrape_configs"]}


# -- durations -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "ms"), [("15s", 15_000), ("1h30m", 5_400_000), ("500ms", 500), ("2d", 172_800_000)]
)
def test_durations_round_trip(text: str, ms: int) -> None:
    assert milliseconds(text) == ms
    assert prometheus_spelling(ms) == text


@pytest.mark.parametrize("text", ["", "5", "1.5m", "5 minutes", "-1s"])
def test_invalid_duration_says_what_to_use(text: str) -> None:
    with pytest.raises(UsageError, match="Prometheus syntax"):
        milliseconds(text)


# -- locating the files ----------------------------------------------------------------------
def test_production_files_are_found_from_the_repository_root() -> None:
    assert prometheus_files.prometheus_dir() == SYSTEM_DIR / "prometheus"
    assert "groups:" in prometheus_files.production_rules_text()


def test_missing_system_directory_is_one_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(prometheus_files, "_SYSTEM_DIR", tmp_path / "nowhere")
    with pytest.raises(MissingDependency, match=r"prometheus\.yml"):
        prometheus_files.rules_path()


# -- render_prometheus_config ----------------------------------------------------------------
def test_rendered_config_keeps_production_jobs_and_replaces_targets(tmp_path: Path) -> None:
    production = yaml.safe_load((SYSTEM_DIR / "prometheus" / "prometheus.yml").read_text())
    config = render(tmp_path)

    assert list(jobs(config)) == [job["job_name"] for job in production["scrape_configs"]]
    assert jobs(config)["ts-forecast-app"]["static_configs"] == [{"targets": ["127.0.0.1:18000"]}]
    assert jobs(config)["ts-forecast-app"]["metrics_path"] == "/metrics"
    assert jobs(config)["node"]["static_configs"] == [{"targets": ["127.0.0.1:19100"]}]
    assert config["alerting"]["alertmanagers"][0]["static_configs"] == [
        {"targets": ["127.0.0.1:19093"]}
    ]
    assert config["rule_files"] == [str(tmp_path / "alerts.yml")]
    assert config["global"]["external_labels"] == production["global"]["external_labels"]


def test_rendered_intervals_and_timeout_fit_together(tmp_path: Path) -> None:
    glob = render(tmp_path, scrape_interval="2s", evaluation_interval="500ms")["global"]
    assert (glob["scrape_interval"], glob["evaluation_interval"]) == ("2s", "500ms")
    assert glob["scrape_timeout"] == "2s"  # production's 10s would be rejected: > interval


def test_missing_exporters_and_alertmanager_are_left_out(tmp_path: Path) -> None:
    config = render(
        tmp_path, postgres_exporter_url=None, node_exporter_url=None, alertmanager_url=None
    )
    assert list(jobs(config)) == ["ts-forecast-app"]
    assert "alerting" not in config


def test_a_path_in_a_url_becomes_the_metrics_path(tmp_path: Path) -> None:
    config = render(tmp_path, app_url="https://127.0.0.1:18443/internal/metrics")
    app = jobs(config)["ts-forecast-app"]
    assert (app["scheme"], app["metrics_path"]) == ("https", "/internal/metrics")


@pytest.mark.parametrize("url", ["http://127.0.0.1", "ftp://127.0.0.1:21", "http://:80"])
def test_bad_url_is_refused(tmp_path: Path, url: str) -> None:
    with pytest.raises(UsageError, match="host and port"):
        render(tmp_path, app_url=url)


def test_a_production_job_without_embedded_target_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy = tmp_path / "prometheus"
    shutil.copytree(SYSTEM_DIR / "prometheus", copy)
    config = yaml.safe_load((copy / "prometheus.yml").read_text())
    config["scrape_configs"].append({"job_name": "redis", "static_configs": [{"targets": ["r:1"]}]})
    (copy / "prometheus.yml").write_text(yaml.safe_dump(config))
    monkeypatch.setattr(prometheus_files, "_SYSTEM_DIR", copy)
    with pytest.raises(UsageError, match="'redis'"):
        render(tmp_path)


@needs_promtool
def test_rendered_config_passes_promtool(tmp_path: Path) -> None:
    rules, _ = shorten_rules(prometheus_files.production_rules_text(), 1 / 60)
    (tmp_path / "alerts.yml").write_text(rules)
    (tmp_path / "prometheus.yml").write_text(
        render_prometheus_config(
            app_url="http://127.0.0.1:18000",
            postgres_exporter_url="http://127.0.0.1:19187",
            node_exporter_url="http://127.0.0.1:19100",
            alertmanager_url="http://127.0.0.1:19093",
            rules_path=tmp_path / "alerts.yml",
        )
    )
    result = subprocess.run(
        ["promtool", "check", "config", str(tmp_path / "prometheus.yml")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


# -- shorten_rules ---------------------------------------------------------------------------
def rules_by_name(text: str) -> dict[str, dict]:
    """Alerts by name; the second rule of a name (HighErrorRate warning) is keyed name/severity."""
    found: dict[str, dict] = {}
    for group in yaml.safe_load(text)["groups"]:
        for rule in group["rules"]:
            key = rule["alert"]
            found[f"{key}/{rule['labels']['severity']}" if key in found else key] = rule
    return found


def test_shortening_scales_for_and_range_windows() -> None:
    text, changes = shorten_rules(prometheus_files.production_rules_text(), 1 / 60)
    rules = rules_by_name(text)

    assert rules["ServiceDown"]["for"] == "2s"
    assert rules["QueueBacklog"]["for"] == "15s"
    assert "[5s]" in rules["HighErrorRate"]["expr"] and "[5m]" not in rules["HighErrorRate"]["expr"]
    # no `for`, no window, but its 2 h age threshold is a duration too: 7200 s -> 120 s
    assert Shortening("LongRunningJob", "age", "7200", "120") in changes
    assert (
        "> 120" in rules["LongRunningJob"]["expr"] and "7200" not in rules["LongRunningJob"]["expr"]
    )
    assert Shortening("ServiceDown", "for", "2m", "2s") in changes
    assert Shortening("HighErrorRate", "range", "5m", "5s") in changes
    assert len(changes) == len(set(changes))
    assert str(changes[0]) == "ServiceDown: for 2m → 2s"
    assert "× 1/60" in text.splitlines()[0]


def test_shortening_keeps_everything_else() -> None:
    original = rules_by_name(prometheus_files.production_rules_text())
    shortened = rules_by_name(shorten_rules(prometheus_files.production_rules_text(), 1 / 60)[0])
    assert original.keys() == shortened.keys()
    for name, rule in original.items():
        assert shortened[name]["labels"] == rule["labels"]
        assert shortened[name]["annotations"] == rule["annotations"]


def test_shortening_never_goes_below_the_minimum() -> None:
    text, changes = shorten_rules(prometheus_files.production_rules_text(), 1 / 600)
    assert rules_by_name(text)["DatabaseDown"]["for"] == "1s"
    assert Shortening("HighErrorRate", "range", "5m", "1s") in changes
    text, _ = shorten_rules(prometheus_files.production_rules_text(), 1 / 600, minimum="4s")
    assert "[4s]" in rules_by_name(text)["HighErrorRate"]["expr"]


def test_shortening_handles_subqueries_and_leaves_string_literals_alone() -> None:
    rules = """
groups:
  - name: g
    interval: 1m
    rules:
      - alert: A
        expr: max_over_time(rate(x{path=~"/v1/[5m]"}[10m])[1h:1m]) > 0 and y[2m:] > 0
        for: 90s
"""
    text, changes = shorten_rules(rules, 1 / 60)
    group = yaml.safe_load(text)["groups"][0]
    assert group["interval"] == "1s"
    assert group["rules"][0]["expr"] == (
        'max_over_time(rate(x{path=~"/v1/[5m]"}[10s])[1m:1s]) > 0 and y[2s:] > 0'
    )
    assert group["rules"][0]["for"] == "1s500ms"
    assert {(c.field, c.before) for c in changes} >= {("resolution", "1m"), ("range", "1h")}


@pytest.mark.parametrize("factor", [0, -1.0])
def test_shortening_needs_a_positive_factor(factor: float) -> None:
    with pytest.raises(UsageError, match="positive"):
        shorten_rules("groups: []", factor)


@needs_promtool
def test_shortened_rules_pass_promtool(tmp_path: Path) -> None:
    text, _ = shorten_rules(prometheus_files.production_rules_text(), 1 / 60)
    (tmp_path / "alerts.yml").write_text(text)
    result = subprocess.run(
        ["promtool", "check", "rules", str(tmp_path / "alerts.yml")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


# -- render_alertmanager_config --------------------------------------------------------------
def test_alertmanager_config_points_at_the_webhook_with_short_timings() -> None:
    config = yaml.safe_load(render_alertmanager_config("http://127.0.0.1:5555/hook"))
    route = config["route"]
    assert (route["group_wait"], route["group_interval"], route["repeat_interval"]) == (
        "1s", "1s", "1m",
    )  # fmt: skip
    receiver = next(r for r in config["receivers"] if r["name"] == route["receiver"])
    assert receiver["webhook_configs"][0]["url"] == "http://127.0.0.1:5555/hook"
    assert receiver["webhook_configs"][0]["send_resolved"] is True
    assert config["inhibit_rules"]  # kept from production


def test_alertmanager_config_refuses_a_bad_webhook() -> None:
    with pytest.raises(UsageError, match="webhook_url"):
        render_alertmanager_config("not a url")


@pytest.mark.skipif(shutil.which("amtool") is None, reason="amtool is not on PATH")
def test_alertmanager_configs_pass_amtool(tmp_path: Path) -> None:
    (tmp_path / "am.yml").write_text(render_alertmanager_config("http://127.0.0.1:5555/hook"))
    for path in (tmp_path / "am.yml", SYSTEM_DIR / "prometheus" / "alertmanager.yml"):
        result = subprocess.run(
            ["amtool", "check-config", str(path)],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr


# -- end to end: a real Prometheus fires and resolves a shortened alert ----------------------
class MetricsServer:
    """A /metrics endpoint on loopback whose body the test sets."""

    def __init__(self) -> None:
        self.body = ""
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                payload = owner.body.encode()
                self.send_response(200 if self.path == "/metrics" else 404)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def set_queue(self, queued: int) -> None:
        self.body = (
            "# TYPE ts_forecast_queued_runs gauge\n"
            f"ts_forecast_queued_runs {queued}\n"
        )  # fmt: skip


@pytest.fixture
def metrics_server() -> Iterator[MetricsServer]:
    server = MetricsServer()
    server.set_queue(0)
    server.thread.start()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=2) as response:
        return json.load(response)


@pytest.fixture
def prometheus(tmp_path: Path, metrics_server: MetricsServer) -> Iterator[str]:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("prometheus is not on PATH: install it (Debian: apt install prometheus)")
    rules, _ = shorten_rules(prometheus_files.production_rules_text(), 1 / 300)
    (tmp_path / "alerts.yml").write_text(rules)
    (tmp_path / "prometheus.yml").write_text(
        render_prometheus_config(
            app_url=metrics_server.url,
            postgres_exporter_url=None,
            node_exporter_url=None,
            alertmanager_url=None,
            rules_path=tmp_path / "alerts.yml",
            scrape_interval="500ms",
            evaluation_interval="500ms",
        )
    )
    port = free_port()
    log = (tmp_path / "prometheus.log").open("w")
    proc = subprocess.Popen(
        [binary, f"--config.file={tmp_path / 'prometheus.yml'}",
         f"--storage.tsdb.path={tmp_path / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        until(lambda: proc.poll() is not None or _ready(url), 20, "Prometheus ready")
        assert proc.poll() is None, (tmp_path / "prometheus.log").read_text()[-2000:]
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/-/ready", timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


def test_shortened_alert_fires_and_resolves_in_a_real_prometheus(
    prometheus: str, metrics_server: MetricsServer
) -> None:
    # QueueBacklog's `for: 15m` is 3s at 1/300; the app target is the only one scraped.
    until(lambda: get_json(f"{prometheus}/api/v1/query?query=up")["data"]["result"], 10,
          "first scrape")  # fmt: skip
    assert alert_state(prometheus, "QueueBacklog") is None

    metrics_server.set_queue(80)
    until(lambda: alert_state(prometheus, "QueueBacklog"), 10, "QueueBacklog pending")
    until(lambda: alert_state(prometheus, "QueueBacklog") == "firing", 15, "QueueBacklog firing")
    fired_seen = datetime.now(UTC)
    alert = next(
        a for a in get_json(f"{prometheus}/api/v1/alerts")["data"]["alerts"]
        if a["labels"]["alertname"] == "QueueBacklog"
    )  # fmt: skip
    active_at = datetime.fromisoformat(alert["activeAt"].replace("Z", "+00:00"))
    assert (fired_seen - active_at).total_seconds() >= 2.9, "fired before its `for` (3s) elapsed"
    assert alert["annotations"]["runbook"] == "3.1.3"
    assert alert["labels"]["job"] == "ts-forecast-app"

    metrics_server.set_queue(3)
    until(lambda: alert_state(prometheus, "QueueBacklog") is None, 10, "QueueBacklog resolved")


# -- compose.yaml ----------------------------------------------------------------------------
def compose() -> dict:
    return yaml.safe_load((SYSTEM_DIR / "compose.yaml").read_text())


def test_compose_has_the_stacks_services_and_ports() -> None:
    services = compose()["services"]
    assert set(services) == {
        "api", "db", "netns", "toxiproxy", "prometheus", "alertmanager", "alert-sink",
        "node-exporter", "postgres-exporter",
    }  # fmt: skip
    published = {
        name: {str(p).split(":")[-1] for p in service.get("ports", [])}
        for name, service in services.items()
    }
    # the api and Toxiproxy share the network namespace `netns` holds: their ports (direct,
    # proxied, Toxiproxy's API, the app's proxied path to the db) are published there
    assert services["api"]["network_mode"] == "service:netns"
    assert services["toxiproxy"]["network_mode"] == "service:netns"
    assert published["netns"] == {"8000", "8001", "8475", "15433"}
    assert published["api"] == published["toxiproxy"] == set()
    assert published["db"] == {"5432"}
    assert published["prometheus"] == {"9090"}
    assert published["alertmanager"] == {"9093", "5001"}  # and the alert sink's, in its netns
    for name, service in services.items():  # loopback only
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), (name, port)


def test_compose_prometheus_targets_are_compose_services() -> None:
    services = compose()["services"]
    config = yaml.safe_load((SYSTEM_DIR / "prometheus" / "prometheus.yml").read_text())
    targets = [
        target
        for job in config["scrape_configs"]
        for static in job["static_configs"]
        for target in static["targets"]
    ] + config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    for target in targets:
        assert target.split(":")[0] in services, target


def test_compose_prometheus_mounts_the_tested_rules_at_drill_scale() -> None:
    """Prometheus in compose loads the production rules shortened as the embedded stack runs
    them (tests/test_compose_rules.py holds those files to what compose_rules generates)."""
    service = compose()["services"]["prometheus"]
    config_arg = next(a for a in service["command"] if a.startswith("--config.file="))
    mounts = {  # container path -> the repository file or folder bind-mounted there
        PurePosixPath(target): (SYSTEM_DIR / source).resolve()
        for source, target, *_ in (v.split(":") for v in service["volumes"])
        if source.startswith(".")
    }

    def host_path(container_path: str) -> Path:
        path = PurePosixPath(container_path)
        for mounted, source in mounts.items():
            if path == mounted or mounted in path.parents:
                return source / path.relative_to(mounted)
        raise AssertionError(f"{container_path} is not mounted from the repository")

    config = host_path(config_arg.split("=", 1)[1])
    rule_files = yaml.safe_load(config.read_text())["rule_files"]
    generated = compose_rules.COMPOSE_MONITORING.resolve() / "rules"
    assert [host_path(f) for f in rule_files] == [
        generated / name for name in prometheus_files.RULE_FILES
    ]
    assert all(host_path(f).is_file() for f in rule_files)


def test_compose_database_and_app_settings() -> None:
    services = compose()["services"]
    db = services["db"]
    assert (SYSTEM_DIR / db["build"]["context"] / db["build"]["dockerfile"]).is_file()
    dockerfile = (SYSTEM_DIR / db["build"]["context"] / db["build"]["dockerfile"]).read_text()
    assert "postgresql-15" in dockerfile and "pg_stat_statements" in dockerfile
    assert db["environment"]["POSTGRES_DB"] == "ts_forecast_system"
    assert "pg_isready" in " ".join(db["healthcheck"]["test"])
    api = services["api"]
    assert {"DATABASE_URL", "NF_API_KEY", "MAX_PARALLEL_RUNS", "NF_HOME"} <= set(api["environment"])
    assert "/health" in " ".join(api["healthcheck"]["test"])
    assert api["depends_on"]["db"]["condition"] == "service_healthy"
    context = SYSTEM_DIR / api["build"]["context"]
    assert (context / api["build"]["dockerfile"]).resolve().is_file()


def test_the_checks_restore_the_age_threshold() -> None:
    from opsdrill.runbook.alert_rules import restore_durations

    text, changes = shorten_rules(prometheus_files.production_rules_text(), 1 / 60)
    restored = rules_by_name(restore_durations(text, [vars(c) for c in changes]))
    assert "> 7200" in restored["LongRunningJob"]["expr"]
    assert restored == rules_by_name(prometheus_files.production_rules_text())
