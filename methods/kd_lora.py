"""KD-LoRA (Azimi et al., arXiv 2410.20777): a LoRA student distilled from a fine-tuned teacher.

The teacher is fully fine-tuned on the task once; its logits are computed once per training
example (`TeacherLogits`) and looked up by example index during student training. The student is
another checkpoint or a model cut to k evenly spaced layers (`cut_layers`; DESIGN.md's recipe cuts
the *pre-trained* model), with LoRA adapters from methods/baselines.py (`attach_lora`), trained on
`kd_loss`.

The paper's official code (https://github.com/rambodazimi/KD-LoRA, src/BERT_KD_LoRA.py) computes
the teacher's logits in dataset order and then reads `teacher_soft_labels[batch_size]` for
shuffled batches, so the soft labels never belong to the examples in the batch. Here every row of
the dataset carries its own `idx`, and logits are looked up by it.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import Tensor, nn


def distillation_loss(
    student_logits: Tensor,
    teacher_logits: Tensor,
    *,
    temperature: float,
    regression: bool,
) -> Tensor:
    """The distillation term alone, averaged over the batch; no gradient reaches the teacher.

    Classification: T² · KL(softmax(z_t/T) ‖ softmax(z_s/T)) (Hinton et al., arXiv 1503.02531: the
    T² keeps the soft term's gradient scale independent of T). Regression (one output): MSE(z_s, z_t),
    the teacher's score as a soft target; a temperature has no meaning for a score, so `temperature`
    is checked but not used and there is no T². Shared by `kd_loss` and PC-LoRA's optional logit KD.
    """
    if not temperature > 0.0:
        raise ValueError(f"method.temperature must be > 0, got {temperature}")
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(
            f"student logits {tuple(student_logits.shape)} and teacher logits {tuple(teacher_logits.shape)} "
            "differ in shape: the teacher (method.teacher) must be fine-tuned on the same task, with the "
            "same number of labels"
        )
    teacher_logits = teacher_logits.detach()
    if regression:
        if student_logits.shape[-1] != 1:
            raise ValueError(
                f"a regression task needs 1 output, got logits of shape {tuple(student_logits.shape)}"
            )
        return F.mse_loss(student_logits.squeeze(-1), teacher_logits.squeeze(-1))
    return temperature**2 * F.kl_div(
        F.log_softmax(student_logits / temperature, dim=-1),
        F.log_softmax(teacher_logits / temperature, dim=-1),
        log_target=True,
        reduction="batchmean",
    )


def kd_loss(
    student_logits: Tensor,
    teacher_logits: Tensor,
    labels: Tensor,
    *,
    kd_weight: float,
    temperature: float,
    regression: bool,
) -> Tensor:
    """(1 - kd_weight) * task loss + kd_weight * `distillation_loss`, averaged over the batch.

    Classification: task loss = cross-entropy with `labels`, distillation = T² · KL. Regression (one
    output): task loss = MSE(z_s, labels), distillation = MSE(z_s, z_t) with no T², so `temperature`
    does not change a regression loss.
    """
    if not 0.0 <= kd_weight <= 1.0:
        raise ValueError(f"method.kd_weight must be in [0, 1], got {kd_weight}")
    distill = distillation_loss(
        student_logits, teacher_logits, temperature=temperature, regression=regression
    )
    if regression:
        student = student_logits.squeeze(-1)
        task = F.mse_loss(student, labels.to(student.dtype).view_as(student))
    else:
        task = F.cross_entropy(student_logits, labels)
    return (1.0 - kd_weight) * task + kd_weight * distill


class TeacherLogits:
    """The teacher's logits for every training example: a float tensor [num_examples, num_outputs].

    Row i holds the logits of the example whose `idx` is i (its position in the, possibly
    subsampled, training set), so any sampler, shuffle or sharding can look them up by `idx`.
    """

    def __init__(self, logits: Tensor) -> None:
        if logits.dim() != 2 or not logits.is_floating_point():
            raise ValueError(
                f"teacher logits must be a 2-D float tensor, got {logits.dtype} {tuple(logits.shape)}"
            )
        self.logits = logits

    def __len__(self) -> int:
        return self.logits.shape[0]

    @property
    def num_outputs(self) -> int:
        return self.logits.shape[1]

    def lookup(self, idx: Tensor) -> Tensor:
        """Logits of the examples `idx` (shape [batch]), as [batch, num_outputs] on the logits' device."""
        return self.logits[idx.to(self.logits.device, torch.long)]

    def to(self, device: torch.device | str) -> TeacherLogits:
        """A copy on `device` (move it once next to the student rather than per batch)."""
        return TeacherLogits(self.logits.to(device))

    def save(self, path: str | Path) -> None:
        """Write the logits to a safetensors file."""
        save_file({"logits": self.logits.detach().cpu().contiguous()}, str(path))

    @classmethod
    def load(cls, path: str | Path) -> TeacherLogits:
        """Read logits written by `save`."""
        return cls(load_file(str(path))["logits"])

    @classmethod
    @torch.no_grad()
    def compute(
        cls,
        teacher: nn.Module,
        dataloader: Iterable[Mapping[str, Tensor]],
        device: torch.device | str,
        num_examples: int | None = None,
    ) -> TeacherLogits:
        """Run `teacher` (eval mode, no grad) once over `dataloader` and store its logits by `idx`.

        Batches are dicts of model inputs plus `idx` (and `labels`, which are not passed to the
        teacher so that it does not compute a loss). The loader must visit every example exactly
        once: no DistributedSampler (it pads shards with repeated examples), no drop_last. Missing
        or repeated indices raise. `num_examples` defaults to `len(dataloader.dataset)`.
        """
        if num_examples is None:
            num_examples = len(dataloader.dataset)  # type: ignore[attr-defined]
        was_training = teacher.training
        teacher.eval()
        logits: Tensor | None = None
        filled = torch.zeros(num_examples, dtype=torch.long)
        try:
            for batch in dataloader:
                idx = batch["idx"].to(torch.long).cpu()
                inputs = {
                    k: v.to(device)
                    for k, v in batch.items()
                    if k not in ("idx", "labels") and isinstance(v, Tensor)
                }
                out = teacher(**inputs)
                batch_logits = (out.logits if hasattr(out, "logits") else out).float().cpu()
                if logits is None:
                    logits = torch.full((num_examples, batch_logits.shape[-1]), float("nan"))
                if idx.numel() and (idx.min() < 0 or idx.max() >= num_examples):
                    raise ValueError(f"example idx out of range [0, {num_examples}): {idx.tolist()}")
                logits[idx] = batch_logits
                filled.index_add_(0, idx, torch.ones_like(idx))
        finally:
            teacher.train(was_training)

        if logits is None:
            raise ValueError("the teacher dataloader yielded no batches")
        missing = (filled == 0).nonzero().flatten().tolist()
        repeated = (filled > 1).nonzero().flatten().tolist()
        if missing or repeated:
            raise ValueError(
                f"teacher logits must be computed exactly once per example: {len(missing)} missing "
                f"(first {missing[:5]}), {len(repeated)} repeated (first {repeated[:5]}); use a plain, "
                "non-distributed loader over the whole training set without drop_last"
            )
        return cls(logits)


def student_layer_indices(num_layers: int, k: int) -> list[int]:
    """The k teacher layers a cut student keeps: round(linspace(0, L - 1, k)), halves rounded up.

    First and last layers are always kept, the rest evenly spaced. For L=12, k=6 this gives
    [0, 2, 4, 7, 9, 11], exactly the layers DistilBERT's student was initialised from (Sanh et al.,
    arXiv 1910.01108; huggingface/transformers examples/research_projects/distillation/scripts/
    extract_distilbert.py). Other examples: L=6, k=3 → [0, 3, 5]; L=4, k=2 → [0, 3]; k=1 → [0].
    """
    if not 1 <= k <= num_layers:
        raise ValueError(
            f"method.student_layers must be between 1 and the teacher's {num_layers} layers, got {k}"
        )
    if k == 1:
        return [0]
    # Integer form of floor(i * (L - 1) / (k - 1) + 1/2): exact, and no banker's rounding of .5.
    return [(2 * i * (num_layers - 1) + (k - 1)) // (2 * (k - 1)) for i in range(k)]


def _layer_list(model: nn.Module, num_layers: int) -> tuple[str, nn.ModuleList]:
    # The transformer blocks are the ModuleList holding config.num_hidden_layers modules: BERT and
    # DeBERTa `<base>.encoder.layer`, DistilBERT `distilbert.transformer.layer`, ViT `vit.layers`
    # (transformers 5), DINOv2 `dinov2.encoder.layer`, MPNet `mpnet.encoder.layer` (its relative-position
    # bias table sits beside the list, shared by every layer, so a cut keeps it). The shallowest list wins.
    found = [
        (name, m)
        for name, m in model.named_modules()
        if isinstance(m, nn.ModuleList) and len(m) == num_layers
    ]
    if not found:
        raise ValueError(
            f"found no list of {num_layers} transformer layers in {type(model).__name__}; "
            "method.student_layers needs a model with config.num_hidden_layers blocks in an nn.ModuleList"
        )
    return min(found, key=lambda item: item[0].count("."))


def cut_layers(model: nn.Module, k: int) -> nn.Module:
    """A deep copy of `model` keeping only the k layers `student_layer_indices(L, k)`.

    Kept (0-based) layer indices: first and last always, the rest evenly spaced, for example
    6 → 3 keeps [0, 3, 5]; 12 → 6 keeps [0, 2, 4, 7, 9, 11] (DistilBERT's); 12 → 3 keeps [0, 6, 11].
    Layer i of the cut model is a copy of layer keep[i] of `model`; `model` itself is not changed.

    Embeddings, final norms and head are copied unchanged; `config.num_hidden_layers` becomes k so
    that `save_pretrained` / `from_pretrained` round-trips the cut model.
    """
    num_layers = getattr(model.config, "num_hidden_layers", None)
    if not isinstance(num_layers, int):
        raise ValueError(
            f"{type(model).__name__} has no config.num_hidden_layers; method.student_layers needs one"
        )
    keep = student_layer_indices(num_layers, k)

    student = copy.deepcopy(model)
    name, layers = _layer_list(student, num_layers)
    parent_name, _, attr = name.rpartition(".")
    parent = student.get_submodule(parent_name) if parent_name else student
    kept = nn.ModuleList([layers[i] for i in keep])
    setattr(parent, attr, kept)
    for new_i, layer in enumerate(kept):
        # Attention modules that index a KV cache remember their layer number (BERT in decoder mode).
        for module in layer.modules():
            if isinstance(getattr(module, "layer_idx", None), int):
                module.layer_idx = new_i

    # deepcopy copied the config once and every submodule shares that copy, so edit it in place.
    config = student.config
    config.num_hidden_layers = k  # DistilBERT maps this to n_layers through its attribute_map
    if hasattr(config, "stage_names") and hasattr(config, "set_output_features_output_indices"):
        # Backbone configs (DINOv2) name one stage per layer; the classifier does not use them, so
        # renumber for k layers and fall back to the default output (the last stage).
        config.stage_names = ["stem"] + [f"stage{i}" for i in range(1, k + 1)]
        config.set_output_features_output_indices(out_features=None, out_indices=None)
    return student
