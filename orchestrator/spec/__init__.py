"""Layer 5: a config checked against the recipes: loading (YAML, --set, paths), validation, and the search
space it describes. Above config and recipes, which both stay unaware of it.

The layers and the rule that imports only go down: tests/test_layers.py."""
