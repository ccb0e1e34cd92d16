"""Benchmarks (`make bench`): measurements, never timed tests."""
