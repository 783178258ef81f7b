"""Tiny text models with their own tokenizers, a tiny SST-2 copy and the training loop run in this process
(no Ray): what the MPNet and cross-tokenizer tests share."""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any

import torch
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    MPNetConfig,
    MPNetForSequenceClassification,
)

from orchestrator.config.schema import Config, with_values
from orchestrator.spec.load import load_config, with_method_defaults

# Characters and word pieces: every lower-case word splits into pieces the vocabulary has (no [UNK]).
_PIECES = [*string.ascii_lowercase, *string.digits, *(f"##{c}" for c in string.ascii_lowercase + string.digits),
           *".,'!?-;:()\"", "the", "and", "of", "film", "movie", "good", "bad", "it", "is", "dull",
           "charming", "journey", "desperate", "great", "plot", "acted", "story", "fun", "year"]
BERT_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *_PIECES]
# Another tokenizer: MPNet's special tokens, the pieces in the other order, so every id means something else.
MPNET_VOCAB = ["<s>", "<pad>", "</s>", "[UNK]", "<mask>", *reversed(_PIECES)]

SENTENCES = ["a good film .", "bad , bad movie !", "it is good", "the movie is bad", "good and good",
             "a bad film of the year", "it 's a charming journey", "dull and desperate"]


def tiny_mpnet_dir(path: Path, *, layers: int = 2, seed: int = 0) -> Path:
    """A random MPNet classifier (hidden 32) with a WordPiece tokenizer of MPNET_VOCAB."""
    torch.manual_seed(seed)
    config = MPNetConfig(vocab_size=len(MPNET_VOCAB), hidden_size=32, num_hidden_layers=layers, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=66, pad_token_id=1, bos_token_id=0,
                         eos_token_id=2)
    MPNetForSequenceClassification(config).save_pretrained(path)
    (path / "vocab.txt").write_text("\n".join(MPNET_VOCAB) + "\n")
    return path


def tiny_bert_dir(path: Path, *, layers: int = 2, seed: int = 0, hidden: int = 32) -> Path:
    """A random BERT classifier with a WordPiece tokenizer of BERT_VOCAB."""
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(BERT_VOCAB), hidden_size=hidden, num_hidden_layers=layers,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=64)
    BertForSequenceClassification(config).save_pretrained(path)
    (path / "vocab.txt").write_text("\n".join(BERT_VOCAB) + "\n")
    return path


def tiny_sst2(data_dir: Path, train: int = 16, dev: int = 8) -> Path:
    """glue/SST-2/{train,dev}.tsv in the classic GLUE layout, labels alternating."""
    folder = data_dir / "glue" / "SST-2"
    folder.mkdir(parents=True, exist_ok=True)
    for name, n in (("train", train), ("dev", dev)):
        rows = [f"{SENTENCES[i % len(SENTENCES)]} {i}\t{i % 2}" for i in range(n)]
        (folder / f"{name}.tsv").write_text("sentence\tlabel\n" + "\n".join(rows) + "\n")
    return data_dir


def tiny_config(tmp_path: Path, model: Path, **values: Any) -> Config:
    """A one-epoch glue/sst2 run of `model` on the tiny copy, results under tmp_path; method defaults filled."""
    base = {"name": "tiny", "task": "glue/sst2", "model": str(model), "data_dir": str(tiny_sst2(tmp_path / "data")),
            "results_dir": str(tmp_path / "results")}
    train = {"train.epochs": 1, "train.batch_size": 4, "train.max_length": 32}
    return with_method_defaults(with_values(load_config(None, base=base), {**train, **values}))


def run_here(cfg: Config, out_dir: Path, *, teacher_dir: Path | None = None, emit_train_logits: bool = False) -> None:
    """orchestrator.loop.run_loop in this process, on the CPU, reporting nowhere."""
    from orchestrator.config.records import LoopConfig
    from orchestrator.engine.loop import run_loop
    from orchestrator.engine.session import Session

    session = Session(rank=0, world=1, device=torch.device("cpu"), checkpoint=None,
                      report=lambda metrics, ckpt: None, make_checkpoint=lambda folder: None,
                      wrap_model=lambda model: model, node="local")
    loop = LoopConfig(config=cfg.to_dict(), out_dir=str(out_dir),
                      teacher_dir=str(teacher_dir) if teacher_dir else None, emit_train_logits=emit_train_logits)
    out_dir.mkdir(parents=True, exist_ok=True)
    run_loop(loop, session)
