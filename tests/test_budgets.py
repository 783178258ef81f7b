"""One training budget per leaderboard task, and titles that state it (orchestrator/budgets.py)."""

import pandas as pd

from orchestrator.config.budgets import budget_text, one_budget_per_task


def trials(*rows: tuple) -> pd.DataFrame:
    cols = ["task", "method.name", "train.max_examples", "train.epochs", "train.max_length", "metric"]
    return pd.DataFrame([dict(zip(cols, r, strict=True)) for r in rows])


def test_a_cell_never_mixes_budgets_and_the_main_budget_wins() -> None:
    frame = trials(
        ("glue/sst2", "fft", None, 3, 128, 0.90),
        ("glue/sst2", "pc_lora", None, 3, 128, 0.84),
        ("glue/sst2", "pc_lora", 1000, 3, 64, 0.95),   # a quickstart-sized trial: must not win the cell
        ("glue/cola", "fft", None, 10, 128, 0.33),
    )
    kept, notes = one_budget_per_task(frame)
    assert sorted(kept["metric"]) == [0.33, 0.84, 0.90]
    assert notes == ["glue/sst2: 1 trial(s) of another training budget left out (the table's is all training "
                     "examples, 3 epochs, max length 128)"]


def test_a_tie_goes_to_the_larger_budget() -> None:
    frame = trials(("glue/mrpc", "fft", 500, 3, 128, 0.7), ("glue/mrpc", "lora", None, 3, 128, 0.8))
    kept, notes = one_budget_per_task(frame)
    assert kept["metric"].tolist() == [0.8] and len(notes) == 1


def test_images_have_no_max_length_in_their_budget_or_title() -> None:
    frame = trials(("cifar10", "fft", None, 2, 128, 0.95), ("cifar10", "lora", None, 2, 64, 0.93))
    kept, notes = one_budget_per_task(frame)
    assert len(kept) == 2 and notes == []  # max length means nothing for images
    assert budget_text(kept) == "training examples: all; epochs: 2"
    assert budget_text(trials(("glue/cola", "fft", None, 10, 128, 0.3))) == \
        "training examples: all; epochs: 10; max length: 128"
