"""The composed stack's drill-scale rule files are what opsdrill.monitoring.compose_rules
generates from the production ones now (regenerate: python -m opsdrill.monitoring.compose_rules)."""

from __future__ import annotations

import yaml

from opsdrill.monitoring import compose_rules
from opsdrill.monitoring.compose_rules import COMPOSE_MONITORING


def test_committed_compose_rules_match_the_production_rules_shortened() -> None:
    for rel, text in compose_rules.render().items():
        path = COMPOSE_MONITORING / rel
        assert path.read_text() == text, (
            f"{path} is stale: run python -m opsdrill.monitoring.compose_rules and commit it"
        )


def test_compose_prometheus_loads_the_drill_scale_rules_every_second() -> None:
    """The shortened windows need a scrape and an evaluation every second, as the embedded
    stack's (a [5s] window with a 5 s scrape holds one sample: rate() says nothing)."""
    config = yaml.safe_load((COMPOSE_MONITORING / "prometheus.yml").read_text())
    assert config["global"]["scrape_interval"] == "1s"
    assert config["global"]["evaluation_interval"] == "1s"
    compose = yaml.safe_load((COMPOSE_MONITORING.parents[1] / "compose.yaml").read_text())
    mounts = compose["services"]["prometheus"]["volumes"]
    assert "./docker/monitoring/rules:/etc/prometheus/rules:ro" in mounts, mounts
    assert any(m.startswith("./docker/monitoring/shortened.json:") for m in mounts), mounts
