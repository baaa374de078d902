"""Benchmark scripts (not tests); run them as `python -m benchmarks.<name>`."""
