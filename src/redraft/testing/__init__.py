"""Runners for checking redraft itself (tests and benchmarks import them; no stage does)."""
