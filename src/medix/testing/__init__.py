"""Helpers for tests and benchmarks: a loopback simulated judge server."""
