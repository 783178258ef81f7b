"""Layer 9: a sweep: Ray Tune with the Optuna searcher, the sweep's console and summary; writes its
outputs through reports/ and runs each trial through engine/.

The layers and the rule that imports only go down: tests/test_layers.py."""
