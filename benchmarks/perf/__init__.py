"""Benchmarks: scripts that print numbers (no assertions), each run as ``python -m benchmarks.perf.NAME``."""
