"""PC-LoRA: progressive compression with low-rank adapters (Hwang et al., arXiv 2406.09117).

Every target ``nn.Linear`` becomes ``F(x) = λ·(W x + b) + s·B(A x) + C`` with W, b frozen and A, B, C
trained. λ decays from 1 to 0 over the first ``decay_end`` fraction of training (:func:`decay_factor`);
once it is 0 the pre-trained weights contribute nothing, :func:`compress` deletes them and the
deployable model holds only A, B, C, the embeddings, the norms and the task head.

The loss step (the teacher pass at λ = 1, feature KD, the weighted sum) is methods/pc_lora_loss.py.
Typical use in a training loop::

    attach(model, rank=32)
    for step, inputs in enumerate(loader):
        set_lambda(model, decay_factor(step, total_steps, "sine", 0.8))
        teacher = pc_lora_loss.teacher_forward(model, **inputs) if kd_weight > 0 else None
        out = model(**inputs, output_hidden_states=True)
        t_hidden = teacher.hidden_states[1:] if teacher is not None else ()
        total = pc_lora_loss.loss(out.loss, out.hidden_states[1:], t_hidden, kd_weight, inputs.get("attention_mask"))
    compress(model)
    save_compressed(model, "run/model")
"""

from __future__ import annotations

import copy
import json
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
import torch.nn.functional as F
import transformers
from torch import Tensor, nn

from methods.schedules import SCHEDULES, decay_factor, schedule_errors  # noqa: F401 - part of this API

# The task head stays a plain module and trains in full. The pooler belongs to it: in the HF
# sequence-classification models only the classifier reads it, and a checkpoint saved without one
# gets a freshly initialised pooler, which would be a fixed random projection if it stayed frozen.
_HEAD = re.compile(r"(^|\.)(classifier|pooler|head|heads|score)(\.|$)")
# word/position/token-type embeddings, ViT/Dinov2 patch embeddings, DeBERTa's rel_embeddings.
_EMBEDDING = re.compile(r"(^|\.)[^.]*embed[^.]*(\.|$)")

# How the adapters start: `zero` is the paper's (B = C = 0, the adapters learn W's job from nothing);
# `svd` starts them at W's best rank-r approximation (PiSSA's split, Meng et al. 2024, arXiv 2404.02948),
# so that at λ = 0 the network begins at the truncated original instead of at W-less noise.
ADAPTER_INITS = ("zero", "svd")

_CONFIG_FILE = "config.json"
_WEIGHTS_FILE = "model.safetensors"
_PC_LORA_FILE = "pc_lora.json"


class PCLoRALinear(nn.Module):
    """An ``nn.Linear`` computing ``λ·(W x + b) + scaling·B(A x) + C``.

    The wrapped layer is kept as ``self.base`` (so its weights stay ``base.weight`` / ``base.bias`` in
    the state dict) and frozen; ``lora_A`` (rank × in), ``lora_B`` (out × rank) and ``lora_C`` (out)
    train. ``lam`` is a plain float that the training loop sets each step (:func:`set_lambda`).
    """

    def __init__(self, base: nn.Linear, rank: int, alpha: float | None = None, init: str = "zero") -> None:
        super().__init__()
        self.base: nn.Linear | None = base
        self.in_features = base.in_features
        self.out_features = base.out_features
        self.rank = rank
        # alpha = rank (scaling 1) by default: the paper's F(x) has no scaling factor. alpha is
        # kept as LoRA's knob for whoever wants alpha/r. Either way B = C = 0 at the start, so at
        # λ = 1 the layer computes exactly the original W x + b.
        self.alpha = float(rank if alpha is None else alpha)
        self.scaling = self.alpha / rank
        self._lam = 1.0
        # False only inside teacher_forward: the layer then computes the original λ·(W x + b).
        self.adapter_enabled = True
        for p in base.parameters():
            p.requires_grad = False
        kw: dict[str, Any] = {"device": base.weight.device, "dtype": base.weight.dtype}
        self.lora_A = nn.Parameter(torch.empty(rank, self.in_features, **kw))
        self.lora_B = nn.Parameter(torch.empty(self.out_features, rank, **kw))
        self.lora_C = nn.Parameter(torch.empty(self.out_features, **kw))
        # The adapter's starting value under `svd` init, frozen (None under `zero`): the original term
        # becomes λ·(W x + b − start(x)), so at λ = 1 the layer still computes exactly W x + b.
        # Not in the state dict: it is recomputed from W by attach(), and deleted with W.
        self.start: tuple[Tensor, Tensor, Tensor] | None = None
        if init not in ADAPTER_INITS:
            raise ValueError(f"init={init!r}: choose one of {', '.join(ADAPTER_INITS)}")
        self.reset_parameters()
        if init == "svd":
            self._start_from_svd()

    def reset_parameters(self) -> None:
        """A as in PEFT/litgpt (kaiming-uniform, a=√5); B and C zero, so at λ = 1 the layer is W x + b."""
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        nn.init.zeros_(self.lora_B)
        nn.init.zeros_(self.lora_C)

    @torch.no_grad()
    def _start_from_svd(self) -> None:
        """A, B = the top-r singular triplets of W split as √σ on each side; C = b."""
        base = self.base
        assert base is not None
        u, sigma, vh = torch.linalg.svd(base.weight.float(), full_matrices=False)
        root = sigma[: self.rank].sqrt()
        a = root[:, None] * vh[: self.rank]
        b = u[:, : self.rank] * root[None, :] / self.scaling  # scaling·B A = U_r Σ_r V_rᵀ
        c = base.bias.float() if base.bias is not None else torch.zeros(self.out_features, device=a.device)
        for param, value in ((self.lora_A, a), (self.lora_B, b), (self.lora_C, c)):
            param.copy_(value)
        self.start = tuple(t.detach().clone() for t in (self.lora_A, self.lora_B, self.lora_C))

    def _apply(self, fn: Any, recurse: bool = True) -> PCLoRALinear:
        # .to(device/dtype) moves the frozen start with the parameters (it is not a registered buffer,
        # so that state dicts and checkpoints stay the paper's A, B, C).
        super()._apply(fn, recurse)
        if self.start is not None:
            self.start = tuple(fn(t) for t in self.start)
        return self

    @property
    def lam(self) -> float:
        """Weight λ of the original layer, from 1 (original) down to 0 (adapter alone)."""
        return self._lam

    @lam.setter
    def lam(self, value: float) -> None:
        value = float(value)
        if self.base is None and value != 0.0:
            raise ValueError(
                f"λ={value} needs the original weights, but drop_base() removed them; λ must stay 0"
            )
        self._lam = value

    def adapter(self, x: Tensor) -> Tensor:
        """``scaling·B(A x) + C``: the part of the layer that survives compression."""
        h = F.linear(x, self.lora_A)
        if self.scaling != 1.0:
            h = h * self.scaling  # on the rank-r activation: cheaper than on the output
        return F.linear(h, self.lora_B, self.lora_C)

    def forward(self, x: Tensor) -> Tensor:
        if self.base is None or self._lam == 0.0:
            # W x + b is not computed at all: training after λ reaches 0 costs only the adapter.
            return self.adapter(x)
        out = self.base(x)
        if self.adapter_enabled and self.start is not None:
            a, b, c = self.start
            out = out - F.linear(F.linear(x, a) * self.scaling, b, c)
        if self._lam != 1.0:
            out = self._lam * out
        return out + self.adapter(x) if self.adapter_enabled else out

    def drop_base(self) -> None:
        """Delete the original W and b (λ becomes 0 for good). Idempotent."""
        self.base = None
        self.start = None
        self._lam = 0.0

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, rank={self.rank}, "
            f"scaling={self.scaling}, lam={self._lam}, base={'kept' if self.base is not None else 'dropped'}"
            + (", init=svd" if self.start is not None else "")
        )


def pc_lora_layers(model: nn.Module) -> list[tuple[str, PCLoRALinear]]:
    """Every PC-LoRA layer of ``model`` with its module name, in module order."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, PCLoRALinear)]


def find_targets(model: nn.Module, target_patterns: Sequence[str] | None = None) -> list[str]:
    """Names of the ``nn.Linear`` layers that :func:`attach` would replace.

    By default: every ``nn.Linear`` inside an ``nn.ModuleList``, the stack of transformer blocks in
    BERT, RoBERTa, DeBERTa-v2, MPNet, ViT and Dinov2 (attention q/k/v/output and both feed-forward layers),
    found by module type rather than by per-architecture names. With ``target_patterns``: every
    ``nn.Linear`` whose name matches one of the regexes (``re.search``); each must match something.
    The task head (classifier, pooler) and the embeddings are never targets.
    """
    if target_patterns is None:
        candidates: dict[str, None] = {}  # an ordered set; nested ModuleLists would repeat names
        for list_name, module_list in model.named_modules():
            if isinstance(module_list, nn.ModuleList):
                for name, m in module_list.named_modules(prefix=list_name):
                    if isinstance(m, nn.Linear):
                        candidates[name] = None
        names = list(candidates)
    else:
        linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
        unmatched = [p for p in target_patterns if not any(re.search(p, n) for n in linears)]
        if unmatched:
            raise ValueError(
                f"target_patterns {unmatched} match no nn.Linear of the model; "
                f"its linear layers are named like {linears[:3]}"
            )
        names = [n for n in linears if any(re.search(p, n) for p in target_patterns)]
    names = [n for n in names if not (_HEAD.search(n) or _EMBEDDING.search(n))]
    if not names:
        raise ValueError(
            f"found no nn.Linear to compress in {type(model).__name__}; pass target_patterns "
            "(regexes over module names) to choose them"
        )
    return names


def rank_errors(model: nn.Module, rank: int, *, target_patterns: Sequence[str] | None = None) -> list[str]:
    """Why ``rank`` cannot be used on ``model`` (an empty list when it can).

    Works on a model built on the meta device, so a config can be checked before anything runs.
    """
    if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
        return [f"method.rank={rank!r} must be an integer >= 1"]
    modules = dict(model.named_modules())
    targets = find_targets(model, target_patterns)
    too_small = [n for n in targets if rank > min(_shape(modules[n]))]
    if not too_small:
        return []
    first = modules[too_small[0]]
    limit = min(min(_shape(modules[n])) for n in targets)
    n_more = len(too_small) - 1
    others = f"; {n_more} more layer{'s' if n_more > 1 else ''} too small for it" if n_more else ""
    return [
        f"method.rank={rank} is larger than layer '{too_small[0]}' ({first.in_features}x{first.out_features}) "
        f"allows (max {min(_shape(first))}{others}); choose a rank <= {limit}"
    ]


def _shape(m: nn.Linear) -> tuple[int, int]:
    return m.in_features, m.out_features


def attach(
    model: nn.Module,
    rank: int,
    *,
    alpha: float | None = None,
    target_patterns: Sequence[str] | None = None,
    init: str = "zero",
) -> list[str]:
    """Replace every target ``nn.Linear`` of ``model`` by a :class:`PCLoRALinear`, in place.

    Targets are chosen by :func:`find_targets`. Afterwards only the adapters (A, B, C) and the task
    head (modules named ``classifier``, ``pooler``, ``head``, ``score``) train, as in the paper:
    embeddings, norms and the original weights are frozen. ``alpha`` defaults to ``rank``
    (scaling 1). ``init`` is how the adapters start (:data:`ADAPTER_INITS`): ``zero``, the paper's, or
    ``svd``, W's top-r singular triplets with C = b and λ scaling the remainder, so that the layer is
    W x + b at λ = 1 either way. Returns the names of the replaced modules. Nothing changes if it raises.
    """
    if pc_lora_layers(model):
        raise ValueError("the model already has PC-LoRA layers; attach() it once")
    errors = rank_errors(model, rank, target_patterns=target_patterns)
    if alpha is not None and not alpha > 0:
        errors.append(f"alpha={alpha!r} must be > 0")
    if init not in ADAPTER_INITS:
        errors.append(f"init={init!r}: choose one of {', '.join(ADAPTER_INITS)}")
    if errors:
        raise ValueError("; ".join(errors))
    targets = find_targets(model, target_patterns)
    for name in targets:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        setattr(parent, child, PCLoRALinear(getattr(parent, child), rank, alpha, init))
    for name, p in model.named_parameters():
        p.requires_grad = ".lora_" in name or bool(_HEAD.search(name))
    return targets


def set_lambda(model: nn.Module, lam: float) -> None:
    """Set λ on every PC-LoRA layer of ``model``."""
    layers = pc_lora_layers(model)
    if not layers:
        raise ValueError("the model has no PC-LoRA layers; call attach() first")
    for _, layer in layers:
        layer.lam = lam


def compress(model: nn.Module) -> nn.Module:
    """Delete W and b of every PC-LoRA layer (λ = 0), in place; returns ``model``."""
    layers = pc_lora_layers(model)
    if not layers:
        raise ValueError("the model has no PC-LoRA layers; call attach() first")
    for _, layer in layers:
        layer.drop_base()
    return model


def save_compressed(model: nn.Module, path: str | Path) -> None:
    """Write a compressed model to folder ``path``: model.safetensors, config.json, pc_lora.json.

    The safetensors file holds only what remains after :func:`compress` (no W, b of the targets).
    ``model`` must be a transformers model (it needs ``.config``).
    """
    layers = pc_lora_layers(model)
    if not layers:
        raise ValueError("the model has no PC-LoRA layers; call attach() first")
    if any(layer.base is not None for _, layer in layers):
        raise ValueError("the model still holds its original weights; call compress(model) first")
    ranks = {(layer.rank, layer.alpha) for _, layer in layers}
    if len(ranks) != 1:
        raise ValueError(f"save_compressed expects one rank and alpha for all layers; found {sorted(ranks)}")
    ((rank, alpha),) = ranks
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    config = copy.deepcopy(model.config)
    # The config of a checkpoint loaded into another head class still names the checkpoint's class
    # (e.g. BertModel); load_compressed rebuilds from this name.
    config.architectures = [type(model).__name__]
    config.save_pretrained(path)
    # save_model rather than save_file: it stores tied tensors once instead of refusing them.
    safetensors.torch.save_model(model, str(path / _WEIGHTS_FILE))
    meta = {"rank": rank, "alpha": alpha, "targets": [name for name, _ in layers]}
    (path / _PC_LORA_FILE).write_text(json.dumps(meta, indent=2) + "\n")


def load_compressed(path: str | Path) -> nn.Module:
    """Rebuild a model written by :func:`save_compressed`; returned in eval mode on the CPU.

    The architecture comes from config.json (``architectures[0]``, a transformers class), PC-LoRA is
    attached at the saved targets, the bases are dropped and the weights loaded strictly.
    """
    path = Path(path)
    for name in (_CONFIG_FILE, _WEIGHTS_FILE, _PC_LORA_FILE):
        if not (path / name).is_file():
            raise FileNotFoundError(
                f"{path / name} is missing; is {path} a folder written by save_compressed?"
            )
    config = transformers.AutoConfig.from_pretrained(path)
    arch = (config.architectures or [None])[0]
    model_cls = getattr(transformers, arch, None) if arch else None
    if model_cls is None:
        raise ValueError(
            f"{path / _CONFIG_FILE}: architectures={config.architectures} names no transformers class"
        )
    meta = json.loads((path / _PC_LORA_FILE).read_text())
    model = model_cls(config)
    patterns = [f"^{re.escape(name)}$" for name in meta["targets"]]
    attach(model, meta["rank"], alpha=meta["alpha"], target_patterns=patterns)
    compress(model)
    safetensors.torch.load_model(model, path / _WEIGHTS_FILE, strict=True)
    return model.eval()
