"""`orchestrator.tune.run_sweep` and `orchestrator.tune.make_searcher`, the names benchmarks and notes use:
the sweep itself is orchestrator/search/tune.py."""

from orchestrator.search.tune import make_searcher, run_sweep

__all__ = ["make_searcher", "run_sweep"]
