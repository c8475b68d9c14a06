"""Benchmarks of carnet over real HTTP: ``python -m bench.run`` (see bench/README.md)."""
