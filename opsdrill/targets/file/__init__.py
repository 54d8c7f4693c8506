"""Target files: a deployment described in TOML or YAML, reached through testinfra."""
