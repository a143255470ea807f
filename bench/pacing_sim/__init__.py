"""Benchmark-only pacing policies (baselines and the oracle) for bench/pacing.py."""
