"""The Docker backend: a Compose project's containers through the Engine API.

`target` is the backend; `exec`, `files` and `memory` its transport for commands, files and
memory limits.
"""
