"""Layer 3: what a run is described by (the config dataclasses, constraints, budgets, the records a run
writes). Above base and tasks; never imports a recipe (spec/ is where a config meets the recipes).

The layers and the rule that imports only go down: tests/test_layers.py."""
