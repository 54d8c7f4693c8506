"""Clients of the stack under test, target-neutral: the app's run API as drills use it."""
