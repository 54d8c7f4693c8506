"""The repository's suites run with the load gate's `--slo` (the plugin brings the rest)."""

#: `--slo FILE` and the `slo_file` fixture, for every suite (opsdrill/load/pytest_gate.py)
pytest_plugins = ["opsdrill.load.pytest_gate"]
