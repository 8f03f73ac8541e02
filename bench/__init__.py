"""Benchmarks of BENCH.md: ``python -m bench --db sqlite|postgres [--quick]``."""
