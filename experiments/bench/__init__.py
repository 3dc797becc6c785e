"""Benchmark scripts that print the project's speed, scale and learning figures (``python -m
experiments.bench.<name>``). They use development dependencies (PuLP for the MILP comparison) and are
left out of the installed package: run them from a checkout with ``pip install -e ".[dev]"``."""
