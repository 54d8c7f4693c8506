"""The reference stack: `nf_auto_runner` (its package), its images and units, and its own tests
(`system/tests/`, importable as `system.tests`)."""
