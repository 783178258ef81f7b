"""Layer 6: MLflow tracking (one run per trial, the sweep's parent run, the views the console links to).

The layers and the rule that imports only go down: tests/test_layers.py."""
