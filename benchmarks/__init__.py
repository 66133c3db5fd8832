"""Benchmarks: each prints its figures; ``python -m benchmarks`` prints one table."""
