"""The stack's monitoring as opsdrill generates and runs it: Prometheus and Alertmanager files
at drill scale, the Grafana dashboard, the alert sink Alertmanager pages, the cgroup exporter.

Nothing here knows a deployment; targets and drills read these files.
"""
