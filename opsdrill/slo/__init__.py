"""Service level objectives: `model` reads slo.yaml into SLOs, `rules` derives Prometheus
recording rules, burn-rate alerts and their promtool tests from them.
"""
