"""Layer 8: what is written from finished trials: trials.csv and the front, the HTML pages, plots,
references, leaderboards. Reads results folders; runs nothing.

The layers and the rule that imports only go down: tests/test_layers.py."""
