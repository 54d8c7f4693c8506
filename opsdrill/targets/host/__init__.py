"""The host backend: a systemd machine over ssh.

`target` is the backend and its units; `ssh` the shared connection; `cgroup` the scripts that
read a unit's cgroup; `proxy` the host's Toxiproxy.
"""
