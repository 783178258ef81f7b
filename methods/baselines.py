"""The two baselines every table compares against: full fine-tuning (FFT) and plain LoRA.

LoRA here is PEFT's (https://github.com/huggingface/peft), applied to the attention query and value
projections as in the LoRA paper (arXiv 2106.09685, section 7.1) and in the KD-LoRA paper's code
(https://github.com/rambodazimi/KD-LoRA, src/BERT_LoRA.py). The same `attach_lora` is used for the
KD-LoRA student (methods/kd_lora.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import peft
from peft import LoraConfig, get_peft_model
from peft.utils import ModulesToSaveWrapper
from torch import nn

# Attention query/value projections per HF `config.model_type`, as named in transformers 5.23.
LORA_TARGETS: dict[str, tuple[str, ...]] = {
    "bert": ("query", "value"),
    "roberta": ("query", "value"),
    "xlm-roberta": ("query", "value"),
    "electra": ("query", "value"),
    "distilbert": ("q_lin", "v_lin"),
    # DeBERTa v1 fuses q, k and v into one `in_proj`: LoRA adapts the fused projection.
    "deberta": ("in_proj",),
    "deberta-v2": ("query_proj", "value_proj"),
    # MPNet (all-mpnet-base-v2): `<base>.encoder.layer.N.attention.attn.{q,k,v,o}`.
    "mpnet": ("q", "v"),
    # transformers 5 renamed ViT and DINOv2 attention to q_proj/k_proj/v_proj/o_proj.
    "vit": ("q_proj", "v_proj"),
    "dinov2": ("q_proj", "v_proj"),
}
# The same projections as earlier transformers 5 releases name them (5.17 on the lent GPU machine).
LORA_TARGETS_BEFORE_RENAME: dict[str, tuple[str, ...]] = {"vit": ("query", "value"), "dinov2": ("query", "value")}


def _model_type(model: nn.Module) -> str | None:
    config = getattr(model, "config", None)
    return getattr(config, "model_type", None)


def _matches(name: str, target: str) -> bool:
    # The rule PEFT applies to a list of target_modules: the whole name or its last dotted components.
    return name == target or name.endswith("." + target)


def lora_target_modules(model: nn.Module, override: Sequence[str] | None = None) -> list[str]:
    """Names of the modules LoRA adapts: `override` if given, else `LORA_TARGETS[model_type]`.

    Every name must match at least one module of `model` (by its last dotted components, as PEFT
    matches them), so that a typo or a renamed module is an error rather than a silent no-op.
    """
    model_type = _model_type(model)
    if override is not None:
        targets = list(override)
        source = f"method.target_modules={targets}"
    elif model_type in LORA_TARGETS:
        targets = list(LORA_TARGETS[model_type])
        source = f"the default targets {targets} for model type {model_type!r}"
    else:
        known = ", ".join(sorted(LORA_TARGETS))
        raise ValueError(
            f"no default LoRA target modules for model type {model_type!r} (known: {known}); "
            "set method.target_modules to the names of its attention projections, e.g. [query, value]"
        )
    if not targets:
        raise ValueError("method.target_modules is empty; name at least one module, e.g. [query, value]")

    names = [name for name, _ in model.named_modules()]
    missing = [t for t in targets if not any(_matches(name, t) for name in names)]
    earlier = LORA_TARGETS_BEFORE_RENAME.get(model_type) if override is None else None
    if missing and earlier and all(any(_matches(name, t) for name in names) for t in earlier):
        return list(earlier)
    if missing:
        leaves = sorted(
            {name.rsplit(".", 1)[-1] for name, m in model.named_modules() if isinstance(m, nn.Linear)}
        )
        raise ValueError(
            f"{source}: {missing} match no module of this model; set method.target_modules to some of "
            f"its linear layers: {leaves}"
        )
    return targets


def head_module_names(model: nn.Module) -> list[str]:
    """Top-level modules of a task model that are not its pre-trained backbone (the task head).

    For `*ForSequenceClassification` / `*ForImageClassification` these are the modules the task
    class adds on top of `model.base_model_prefix`: `classifier` (BERT, RoBERTa, ViT, DINOv2),
    `pre_classifier` + `classifier` (DistilBERT), `pooler` + `classifier` (DeBERTa). They are freshly
    initialised when a backbone checkpoint is loaded, so they must train. BERT's own pooler lives
    inside the backbone (pre-trained on next-sentence prediction) and stays frozen, as with PEFT's
    SEQ_CLS task type used by the KD-LoRA paper's code. A bare backbone has no head: [].
    """
    prefix = getattr(model, "base_model_prefix", None)
    return [
        name
        for name, child in model.named_children()
        if name != prefix and any(True for _ in child.parameters())
    ]


def backbone_pooler_names(model: nn.Module) -> list[str]:
    """The backbone's pooler (BERT's `bert.pooler`), which LoRA methods train in full with the head.

    The pooler feeds the classifier, and a checkpoint without one (sentence-transformers exports such
    as paraphrase-MiniLM-L3) loads it freshly initialised: frozen, it would stay a fixed random
    projection under the head (measured: KD-LoRA into MiniLM-L3 reached 0.50 on STS-B that way, against
    0.86 for LoRA on MiniLM-L6, whose checkpoint has one). PC-LoRA trains it for the same reason.
    """
    prefix = getattr(model, "base_model_prefix", None)
    backbone = getattr(model, prefix, None) if prefix else None
    pooler = getattr(backbone, "pooler", None) if backbone is not None else None
    if isinstance(pooler, nn.Module) and any(True for _ in pooler.parameters()):
        return [f"{prefix}.pooler"]
    return []


def lora_rank_problem(model: nn.Module, rank: int, target_names: Sequence[str]) -> str | None:
    """Why `rank` does not fit the target layers (None if it does). Works on a meta-device model."""
    # A rank above min(in, out) adds parameters without adding expressiveness (BA is at most
    # min(in, out)-rank), and is almost always a mistaken config value.
    smallest = min(
        (min(m.weight.shape), name)
        for name, m in model.named_modules()
        if any(_matches(name, t) for t in target_names)
        and getattr(m, "weight", None) is not None
        and m.weight.dim() == 2
    )
    if rank > smallest[0]:
        return (
            f"method.rank={rank} is larger than the smallest dimension ({smallest[0]}) of the target "
            f"layer {smallest[1]!r}; choose method.rank <= {smallest[0]}"
        )
    return None


def attach_lora(
    model: nn.Module,
    rank: int,
    *,
    alpha: float | None = None,
    dropout: float = 0.1,
    targets: Sequence[str] | None = None,
) -> peft.PeftModel:
    """Freeze `model` and add LoRA adapters of rank `rank`; the task head stays fully trainable.

    `alpha` defaults to 2 * rank, the KD-LoRA code's default (rank 8, lora_alpha 16), so the
    update is scaled by alpha / rank = 2 at every rank. `dropout` 0.1 is the KD-LoRA script's
    value. `targets` overrides `LORA_TARGETS` (see `lora_target_modules`). The head modules
    (`head_module_names`) go to PEFT's `modules_to_save`: trained in full and put back into the
    model by `merge_lora`.
    """
    target_names = lora_target_modules(model, targets)
    if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
        raise ValueError(f"method.rank must be an integer >= 1, got {rank!r}")
    problem = lora_rank_problem(model, rank, target_names)
    if problem:
        raise ValueError(problem)

    heads = head_module_names(model) + backbone_pooler_names(model)
    config = LoraConfig(
        r=rank,
        lora_alpha=2 * rank if alpha is None else alpha,
        lora_dropout=dropout,
        target_modules=target_names,
        bias="none",
        modules_to_save=heads or None,
        # No task_type: the generic PeftModel forwards any inputs (input_ids or pixel_values), and
        # the head is named explicitly above. SEQ_CLS would only add "classifier"/"score" to
        # modules_to_save and assume text inputs.
        task_type=None,
    )
    lora_model = get_peft_model(model, config)
    wrapped = [n for n, m in lora_model.named_modules() if isinstance(m, ModulesToSaveWrapper)]
    if len(wrapped) != len(heads):
        # PEFT matches modules_to_save by name suffix; a head name that also ends another module's
        # name would make that module trainable too.
        raise RuntimeError(f"expected the head modules {heads} to be trainable, PEFT wrapped {wrapped}")
    return lora_model


def prepare_fft(model: nn.Module) -> nn.Module:
    """Full fine-tuning: make every parameter trainable (in place) and return the model."""
    for p in model.parameters():
        p.requires_grad_(True)
    return model


def merge_lora(model: peft.PeftModel) -> nn.Module:
    """Fold the LoRA updates into the base weights and return the plain HF model (deployable).

    Works in place: `model` must not be used afterwards. The trained copies of the head modules
    replace the original ones. `safe_merge` checks the merged weights for NaNs before committing.
    """
    if not isinstance(model, peft.PeftModel):
        raise TypeError(f"merge_lora expects a peft.PeftModel (from attach_lora), got {type(model).__name__}")
    return model.merge_and_unload(safe_merge=True)


def save_model(model: nn.Module, path: str | Path) -> None:
    """Save a plain HF model as `path/model.safetensors` + `path/config.json`."""
    if isinstance(model, peft.PeftModel):
        # save_pretrained on a PeftModel writes only the adapter: not a deployable model.
        raise TypeError("save_model got a PeftModel; merge it first with merge_lora(model)")
    model.save_pretrained(str(path))
