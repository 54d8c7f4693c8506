"""Steady-state probes: each answers one question about the stack now, quickly."""
