"""Layer 1, the lowest: helpers that know nothing of this project's configs or methods (files, typed
construction, redaction, shell commands, the Pareto front). They import nothing from orchestrator but each other.

The layers and the rule that imports only go down: tests/test_layers.py."""
