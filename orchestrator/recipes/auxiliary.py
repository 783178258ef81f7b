"""Auxiliary models: the fully fine-tuned runs a recipe needs beside its trials, declared by the recipe
(`Recipe.auxiliary_models`) and built once, cached by their config, by the engine (orchestrator/engine/run.py
`ensure_auxiliary`).

Two roles today: the task's fine-tuned teacher (KD-LoRA's, PC-LoRA's with `kd_teacher: finetuned`), whose
logits per training example the student learns from, and a KD-LoRA student's own FFT "ceiling" (DESIGN.md:
every table that states KD-LoRA's share of FFT also states it), which trains nothing but is the reference
a student is judged against. Another cached model (a pre-trained feature teacher) is one more function here
and one more entry in the recipe's list; the engine, the console, MLflow and the references name it by role.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from orchestrator.config.records import TrialFiles
from orchestrator.config.schema import with_values

if TYPE_CHECKING:
    from orchestrator.config.schema import Config

FFT = "fft"  # every auxiliary model is a full fine-tuning run (the FFT recipe) of some checkpoint
TEACHER = "teacher"
STUDENT_CEILING = "student_ceiling"
# The cache folders under results_dir, one per role. `teachers` is the folder (and `fft_key` the key) that
# teachers were cached under before auxiliary models existed: those caches are found as they are.
FOLDERS = {TEACHER: "teachers", STUDENT_CEILING: "ceilings"}
LOCKS = ".aux-locks"  # hidden: the leaderboards' scan of results_dir skips it


@dataclass(frozen=True)
class AuxModel:
    """One cached model a run needs: its role, the FFT run that makes it, and how it is named."""

    role: str                 # TEACHER, STUDENT_CEILING: MLflow's sweep_role tag and its run name's prefix
    config: Config            # the full fine-tuning run that makes it (method.name: fft)
    title: str                # how the console names it: "the all-MiniLM-L6-v2 teacher"
    reference: str            # how reports name its score: "FFT teacher (minilm-l6)"
    emit_train_logits: bool = False  # also write its logits for every training example (a logit-KD teacher)
    judges: str | None = None  # the student checkpoint whose trials are judged against it (a ceiling)

    @property
    def key(self) -> str:
        return fft_key(self.config)

    def folder(self, results_dir: str | Path) -> Path:
        return Path(results_dir) / FOLDERS[self.role] / self.key

    def finished(self, folder: Path) -> bool:
        """Whether `folder` holds its finished run: metrics.json (and the logits, when it must write them)."""
        return (folder / TrialFiles.METRICS).is_file() and (
            not self.emit_train_logits or (folder / TrialFiles.TEACHER_LOGITS).is_file())

    def cached(self, results_dir: str | Path) -> Path | None:
        """Where it is cached: its own folder, else the same FFT run (same key) cached under another role's (a
        student that is also a teacher elsewhere is fine-tuned once); None when nowhere yet."""
        own = self.folder(results_dir)
        others = [Path(results_dir) / f / self.key for r, f in FOLDERS.items() if r != self.role]
        return next((folder for folder in (own, *others) if self.finished(folder)), None)

    def lock(self, results_dir: str | Path) -> Path:
        """The lock its builders wait on: one per FFT run (key), whatever the role, so that two sweeps that need
        the same run as a teacher and as a ceiling at the same time train it once."""
        return Path(results_dir) / LOCKS / f"{self.key}.lock"

    def is_cached(self, results_dir: str | Path) -> bool:
        return self.cached(results_dir) is not None


def fft_key(t: Config) -> str:
    """Cache key of a full fine-tuning run: everything that changes the model or which examples it saw."""
    settings = {"task": t.task, "model": t.model, "data_dir": t.data_dir, "epochs": t.train.epochs,
                "lr": t.train.lr, "batch_size": t.train.batch_size, "max_length": t.train.max_length,
                "max_examples": t.train.max_examples, "seed": t.train.seed, "weight_decay": t.train.weight_decay,
                "warmup_ratio": t.train.warmup_ratio, "augment": t.train.augment,
                # only when on, so that the keys (and caches) of teachers trained before it existed stay
                **({"group_by_length": True} if t.train.group_by_length else {})}
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", f"{t.task}-{Path(t.model).name}")
    return f"{slug}-{digest}"


def fft_config(cfg: Config, model: str) -> Config:
    """`model` fully fine-tuned on the run's task, data and budget, at the teacher's epochs and learning rate."""
    m = cfg.method
    return with_values(cfg, {"method.name": FFT, "model": model, "train.epochs": m.teacher_epochs,
                             "train.lr": m.teacher_lr})


def teacher_config(cfg: Config) -> Config:
    """The full fine-tuning run that makes the task's teacher (`method.teacher`, else `model`)."""
    return fft_config(cfg, cfg.method.teacher or cfg.model)


def teacher(cfg: Config) -> AuxModel:
    """The task's fine-tuned teacher, with its logits for every training example (KD-LoRA and distil_compress
    read them; PC-LoRA with `kd_teacher: finetuned` shares the same cached folder). Named by its checkpoint, not
    by a method: several recipes declare it."""
    t = teacher_config(cfg)
    return AuxModel(role=TEACHER, config=t, title=f"the {Path(t.model).name} teacher",
                    reference=f"FFT teacher ({Path(t.model).name})", emit_train_logits=True)


def student_ceiling(cfg: Config, student: str) -> AuxModel:
    """The student checkpoint's own FFT on the teacher's budget: what distillation into it can at best reach."""
    return AuxModel(role=STUDENT_CEILING, config=fft_config(cfg, student), title="the student's own FFT ceiling",
                    reference=f"student's FFT ceiling ({Path(student).name})", judges=student)


def declared(models: list[AuxModel], role: str) -> AuxModel | None:
    """The model of `role` among a recipe's auxiliary models, or None."""
    return next((aux for aux in models if aux.role == role), None)
