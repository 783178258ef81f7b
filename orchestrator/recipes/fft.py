"""Full fine-tuning (FFT): every weight trains; the reference every table compares against."""

from __future__ import annotations

from orchestrator.recipes.base import Recipe


class FullFineTuning(Recipe):
    name = "fft"
    display_name = "FFT"
    is_baseline = True
    is_full_finetune = True
    # BERT-family fine-tuning rates (Devlin et al. search 2e-5..5e-5; MiniLM-sized models take up to 1e-4).
    # MiniLM-L6 on one H200 (results/gpu/fidelity/): 5e-5 beat 1e-4 on MRPC, STS-B, CoLA; tied on SST-2.
    defaults = {"train.lr": 5.0e-5}
    lr_range = (2.0e-5, 1.5e-4)


RECIPE = FullFineTuning()
