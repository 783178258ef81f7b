"""Shared pieces of the benchmark scripts: the machine, the batches, interleaved timing, the output files.

Every benchmark measures ratios between conditions timed side by side in one process, one step per
condition per round (A B C ... A B C ...), so that the drifts of a shared machine (other jobs, turbo,
thermal) hit every condition alike. Absolute seconds are printed too, but only the ratios carry over
to another machine.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"
SHARED = ROOT.parent / "shared"
MODELS = SHARED / "models"
DATA = SHARED / "data"

if str(ROOT) not in sys.path:  # `python benchmarks/x.py` from the repository root
    sys.path.insert(0, str(ROOT))


def model_dir(name: str) -> Path:
    """A model folder: ORCH_BENCH_MODELS/<name> if set (the GPU machine carries them), else ../shared/models."""
    base = Path(os.environ.get("ORCH_BENCH_MODELS", MODELS))
    return base / name


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def machine(device: torch.device) -> dict[str, Any]:
    """What the numbers were measured on; every results file names it."""
    info: dict[str, Any] = {
        "cpu": cpu_model(),
        "nproc": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "device": str(device),
        "load_average_start": load_average(),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    try:
        import transformers

        info["transformers"] = transformers.__version__
    except ImportError:
        pass
    return info


def machine_line(info: dict[str, Any]) -> str:
    gpu = f", GPU {info['gpu']}" if info.get("gpu") else ", no GPU used"
    return (f"{info['cpu']} ({info['nproc']} cores, torch {info['torch']}, {info['torch_threads']} threads"
            f"{gpu}); load average at start {info.get('load_average_start')}, at end {info.get('load_average_end')}")


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def sst2_batches(model_path: Path, *, batch_size: int, max_length: int, n_batches: int,
                 max_examples: int = 1000, seed: int = 0) -> tuple[list[dict[str, torch.Tensor]], Any, Any]:
    """`n_batches` real SST-2 training batches, tokenised and padded exactly as the training loop does.

    The project's build_dataset (1,000-example stratified subset, the quickstart's) and its collate
    function (dynamic padding to the longest row of the batch); batches in a seeded shuffled order.
    Also returns the dataset and its collate function (for teacher logits by `idx`).
    """
    from torch.utils.data import DataLoader

    from orchestrator.tasks import build_dataset, get_task

    task = get_task("glue/sst2")
    data_dir = os.environ.get("ORCH_BENCH_DATA", str(DATA))
    dataset, collate = build_dataset(task, "train", model_name_or_path=str(model_path), data_dir=data_dir,
                                     max_length=max_length, max_examples=max_examples, seed=seed, train=True)
    gen = torch.Generator().manual_seed(seed)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, generator=gen, collate_fn=collate,
                        drop_last=True)
    batches = []
    for batch in loader:
        batches.append(batch)
        if len(batches) == n_batches:
            break
    return batches, dataset, collate


def synthetic_batch(vocab_size: int, batch_size: int, seq_len: int, *, seed: int = 0,
                    token_types: bool = True) -> dict[str, torch.Tensor]:
    """Fixed-length random token ids (speed does not depend on the values), full attention mask."""
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(1000, vocab_size, (batch_size, seq_len), generator=gen)
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    if token_types:
        batch["token_type_ids"] = torch.zeros_like(ids)
    return batch


def interleaved(conditions: dict[str, Callable[[int], None]], *, warmup: int, rounds: int,
                device: torch.device) -> dict[str, list[float]]:
    """Run each condition once per round, in turn; returns the seconds of every timed call by condition.

    The callable gets the round number (to pick a batch). Warm-up rounds are run and discarded.
    """
    times: dict[str, list[float]] = {name: [] for name in conditions}
    for r in range(warmup + rounds):
        for name, fn in conditions.items():
            sync(device)
            start = time.perf_counter()
            fn(r)
            sync(device)
            seconds = time.perf_counter() - start
            if r >= warmup:
                times[name].append(seconds)
    return times


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    q1, q3 = (statistics.quantiles(ordered, n=4)[::2] if len(ordered) >= 4 else (ordered[0], ordered[-1]))
    return {"median": statistics.median(ordered), "min": ordered[0], "q1": q1, "q3": q3, "n": len(ordered)}


def write(name: str, payload: dict[str, Any], markdown: str, out_dir: Path = RESULTS) -> tuple[Path, Path]:
    """Write results/<name>.json and results/<name>.md; returns both paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out_dir / f"{name}.json", out_dir / f"{name}.md"
    json_path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    md_path.write_text(markdown)
    return json_path, md_path


ARCHS: dict[str, dict[str, int]] = {
    # BERT-base's shape (bert-base-uncased): the paper's text model and issue 10's GPU model.
    "bert-base": {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
                  "intermediate_size": 3072, "vocab_size": 30522},
    # MiniLM-L6-H384's shape (the quickstart's model), for runs without the shared folder.
    "minilm-l6": {"hidden_size": 384, "num_hidden_layers": 6, "num_attention_heads": 12,
                  "intermediate_size": 1536, "vocab_size": 30522},
    # A toy, to check a script end to end in seconds before a device call.
    "tiny": {"hidden_size": 64, "num_hidden_layers": 4, "num_attention_heads": 2,
             "intermediate_size": 128, "vocab_size": 2000},
}


def random_bert(arch: str, num_labels: int = 2, seed: int = 0) -> Any:
    """A BertForSequenceClassification with `arch`'s shape and random weights (speed does not depend on values)."""
    import transformers

    torch.manual_seed(seed)
    config = transformers.BertConfig(**ARCHS[arch], num_labels=num_labels, max_position_embeddings=512)
    return transformers.BertForSequenceClassification(config)


MAX_GRAD_NORM = 1.0  # train.max_grad_norm's default


def make_step(model: Any, loss_fn: Callable[[dict[str, torch.Tensor]], torch.Tensor], device: torch.device,
              amp: bool, batches: list[dict[str, torch.Tensor]], before: Callable[[], None] | None = None,
              peaks: dict[str, int] | None = None, name: str = "") -> Callable[[int], None]:
    """One training step as orchestrator/engine/loop.py's train_step runs it, as a callable of the round number.

    The batch to the device, the loss under bf16 autocast on a GPU (float32 on a CPU), zero_grad,
    backward, clip_grad_norm_ to 1.0, AdamW step, and `loss.item()` (the loop's only host sync).
    `before` runs first (e.g. to set PC-LoRA's λ); the loss function may pop `idx`/`labels` from the
    batch, which is a fresh dict each call.
    """
    trainable = [p for p in model.parameters() if p.requires_grad]
    # orchestrator.engine.loop.adamw, written out: the loop imports Ray, which the GPU benchmarks run without.
    # Fused on a GPU since 2026-12-02 (earlier H200 figures are unfused).
    optimizer = torch.optim.AdamW(trainable, lr=1e-4, weight_decay=0.01,
                                  fused=bool(trainable) and all(p.is_cuda for p in trainable))

    def step(round_: int) -> None:
        if device.type == "cuda" and peaks is not None:
            torch.cuda.reset_peak_memory_stats(device)
        if before is not None:
            before()
        batch = {k: v.to(device, non_blocking=True) for k, v in batches[round_ % len(batches)].items()}
        model.train()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            loss = loss_fn(batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, MAX_GRAD_NORM)
        optimizer.step()
        loss.item()
        if device.type == "cuda" and peaks is not None:
            peaks[name] = max(peaks.get(name, 0), torch.cuda.max_memory_allocated(device))

    return step


def common_args(parser: Any, *, rounds: int, warmup: int) -> None:
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (2 = the target machine)")
    parser.add_argument("--warmup", type=int, default=warmup)
    parser.add_argument("--rounds", type=int, default=rounds)
    parser.add_argument("--suffix", default="", help="results file name suffix, e.g. 'h200'")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results folder")


def command_line() -> str:
    """The command as typed: `python -m benchmarks.x ...` when run as a module."""
    first = Path(sys.argv[0])
    head = f"-m benchmarks.{first.stem}" if first.suffix == ".py" and first.parent.name == "benchmarks" else str(first)
    return " ".join([Path(sys.executable).name, head, *sys.argv[1:]])


def quiet_transformers() -> None:
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()


# ------------------------------------------------------------------ the methods' training steps, by their recipes
# A benchmark times what training runs: each method's model, teacher side, λ and loss come from its recipe
# (orchestrator/recipes: build_model, prepare, before_step, loss), never from a copy of them here.

def recipe_config(model: str, method: str, **method_keys: Any) -> Any:
    """A config for `method` on `model` (SST-2's head), with `method.<key>` settings."""
    from orchestrator.config.schema import Config, with_values

    return with_values(Config(task="glue/sst2", model=str(model)),
                       {"method.name": method, **{f"method.{k}": v for k, v in method_keys.items()}})


def recipe_loss(cfg: Any, model: Any, aux: Any = None) -> Callable[[dict[str, torch.Tensor]], torch.Tensor]:
    """The recipe's loss of `cfg`'s method on one batch, as the loop calls it (one worker: no DDP wrapper)."""
    from orchestrator.recipes import StepInputs, get_recipe

    recipe = get_recipe(cfg.method.name)
    return lambda batch: recipe.loss(StepInputs(cfg=cfg, model=model, raw_model=model, batch=batch, aux=aux,
                                                regression=False))


# PC-LoRA's λ at a step of a three-step run with a linear decay to the end: 1, 0.5, 0.
LAMBDA_STEPS = {0.5: 1, 0.0: 2}


def lambda_setter(model: Any, lam: float, rank: int) -> Callable[[], None]:
    """PC-LoRA's before_step at the step where its schedule gives `lam` (set before every timed step)."""
    from orchestrator.recipes import get_recipe

    cfg = recipe_config("unused", "pc_lora", rank=rank, decay_schedule="linear", decay_end=1.0)
    recipe = get_recipe("pc_lora")

    def before() -> None:
        state = recipe.before_step(cfg, model, LAMBDA_STEPS[lam], 3)
        assert state["lambda"] == lam, state

    return before


def method_conditions(model_path: Path, *, rank: int, student_layers: int, kd_weight: float, device: torch.device,
                      teacher: Any, logits: Any, work_dir: Path) -> list[tuple[str, Any, Callable, Callable | None]]:
    """(name, model, loss, before) of every method condition, the models built by the recipes from `model_path`.

    `teacher`: KD-LoRA's frozen teacher on `device` (the teacher-forward condition); `logits`: its TeacherLogits,
    one row per training example by `idx`, written to `work_dir` and read back by KD-LoRA's own `prepare`.
    PC-LoRA with KD runs the frozen teacher (the model itself at λ = 1) each step, as in the first epoch: its
    feature cache is given no room (later epochs read it from the cache)."""
    from methods.feature_cache import FeatureCache
    from orchestrator.config.records import TrialFiles
    from orchestrator.recipes import get_recipe
    from orchestrator.recipes.kd_lora import KDTeacher
    from orchestrator.tasks import get_task

    task = get_task("glue/sst2")

    def build(cfg: Any) -> Any:
        return get_recipe(cfg.method.name).build_model(cfg, task, None).to(device)

    fft_cfg = recipe_config(model_path, "fft")
    lora_cfg = recipe_config(model_path, "lora", rank=rank)
    pc_cfgs = {kd: recipe_config(model_path, "pc_lora", rank=rank, kd_weight=kd) for kd in (0.0, kd_weight)}
    kd_cfg = recipe_config(model_path, "kd_lora", rank=rank, student_layers=student_layers, kd_weight=kd_weight,
                           temperature=2.0)
    fft, lora, pc, student = build(fft_cfg), build(lora_cfg), build(pc_cfgs[0.0]), build(kd_cfg)

    pc_aux = {kd: get_recipe("pc_lora").prepare(cfg, task, device, None, len(logits)) for kd, cfg in pc_cfgs.items()}
    for aux in pc_aux.values():
        if aux is not None:
            aux.cache = FeatureCache(0)
    teacher_dir = Path(work_dir) / "teacher"
    teacher_dir.mkdir(parents=True, exist_ok=True)
    logits.save(teacher_dir / TrialFiles.TEACHER_LOGITS)
    cached = get_recipe("kd_lora").prepare(kd_cfg, task, device, str(teacher_dir), len(logits))

    def pc_loss(kd: float) -> Callable:
        return recipe_loss(pc_cfgs[kd], pc, pc_aux[kd])

    L, kd = student_layers, kd_weight
    return [
        ("fft", fft, recipe_loss(fft_cfg, fft), None),
        (f"lora r{rank}", lora, recipe_loss(lora_cfg, lora), None),
        ("pc_lora λ=0.5 kd=0", pc, pc_loss(0.0), lambda_setter(pc, 0.5, rank)),
        ("pc_lora λ=0 kd=0 (W skipped)", pc, pc_loss(0.0), lambda_setter(pc, 0.0, rank)),
        (f"pc_lora λ=0.5 kd={kd}", pc, pc_loss(kd), lambda_setter(pc, 0.5, rank)),
        (f"pc_lora λ=0 kd={kd} (teacher needs W)", pc, pc_loss(kd), lambda_setter(pc, 0.0, rank)),
        (f"kd_lora {L}L cached logits", student, recipe_loss(kd_cfg, student, cached), None),
        (f"kd_lora {L}L teacher fwd/step", student, recipe_loss(kd_cfg, student, KDTeacher(model=teacher)), None),
    ]
