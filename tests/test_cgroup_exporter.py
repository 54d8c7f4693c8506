"""The workers' cgroup seen as a node: MemTotal/MemAvailable as LXCFS would show them."""

from __future__ import annotations

from pathlib import Path

from opsdrill.monitoring import prometheus_files
from opsdrill.monitoring.cgroup_exporter import meminfo, render

MiB = 2**20


def _cgroup(tmp_path: Path, limit: int, usage: int, inactive_file: int) -> Path:
    """The three cgroup v1 files the exporter reads, with these values."""
    (tmp_path / "memory.limit_in_bytes").write_text(f"{limit}\n")
    (tmp_path / "memory.usage_in_bytes").write_text(f"{usage}\n")
    (tmp_path / "memory.stat").write_text(
        f"cache 0\nrss {usage}\ntotal_inactive_file {inactive_file}\n"
    )
    return tmp_path


def test_a_limited_group_is_a_machine_of_its_limit(tmp_path: Path) -> None:
    total, available = meminfo(_cgroup(tmp_path, 400 * MiB, 380 * MiB, 20 * MiB))
    assert total == 400 * MiB
    assert available == 40 * MiB, "inactive page cache is reclaimable: it counts as available"
    assert 1 - available / total > 0.85  # what HighMemoryUsage computes
    assert f"node_memory_MemTotal_bytes {400 * MiB}" in render(tmp_path)


def test_an_unlimited_group_is_as_big_as_the_host(tmp_path: Path) -> None:
    total, available = meminfo(_cgroup(tmp_path, 2**63 - 4096, 100 * MiB, 0))
    host = int(Path("/proc/meminfo").read_text().split()[1]) * 1024
    assert total == host and available == host - 100 * MiB


def test_prometheus_scrapes_the_group_in_the_node_job(tmp_path: Path) -> None:
    text = prometheus_files.render_prometheus_config(
        app_url="http://127.0.0.1:1", postgres_exporter_url=None,
        node_exporter_url="http://127.0.0.1:2", alertmanager_url=None,
        rules_path=tmp_path / "*.yml", worker_node_url="http://127.0.0.1:3",
    )  # fmt: skip
    import yaml

    node = next(j for j in yaml.safe_load(text)["scrape_configs"] if j["job_name"] == "node")
    assert node["static_configs"] == [
        {"targets": ["127.0.0.1:2"]},
        {"targets": ["127.0.0.1:3"], "labels": {"node": "workers"}},
    ]
