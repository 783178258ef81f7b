"""Layer 7: one trial or run: preflight, the training loop, Ray Train, measurements, ASHA's decision inside
the trial, the per-epoch console lines. Knows nothing of the sweep around it.

The layers and the rule that imports only go down: tests/test_layers.py."""
