"""The performance harness (issue 10): `python -m benchmarks` runs the suite; see benchmarks/README.md."""
