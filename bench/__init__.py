"""Benchmarks: measured as ratios against baselines in the same run, never asserted in tests."""
