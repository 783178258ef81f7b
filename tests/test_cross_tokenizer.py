"""KD-LoRA across tokenizers (issue 36 item 2): a tiny MPNet teacher and a tiny BERT student whose vocabularies
give every token another id. The teacher's logits are computed on the teacher's own tokenization and looked up
by example index; the student trains on its own tokens."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from methods.kd_lora import TeacherLogits
from orchestrator import recipes
from orchestrator.config.records import TrialFiles
from orchestrator.config.schema import with_values
from orchestrator.recipes.auxiliary import teacher_config
from orchestrator.recipes.base import StepInputs
from orchestrator.spec.load import with_method_defaults
from orchestrator.tasks import build_dataset, get_task
from tests.tiny_text import run_here, tiny_bert_dir, tiny_config, tiny_mpnet_dir


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The KD-LoRA config (mpnet teacher -> bert student) and its teacher, trained as ensure_auxiliary trains it."""
    tmp = tmp_path_factory.mktemp("xtok")
    teacher, student = tiny_mpnet_dir(tmp / "teacher", seed=1), tiny_bert_dir(tmp / "student", seed=2)
    cfg = tiny_config(tmp, teacher, **{"method.name": "kd_lora", "method.student": str(student), "method.rank": 2,
                                       "method.kd_weight": 1.0})
    teacher_dir = tmp / "teacher-run"
    run_here(with_method_defaults(teacher_config(cfg)), teacher_dir, emit_train_logits=True)
    return {"cfg": cfg, "teacher_dir": teacher_dir, "tmp": tmp, "teacher": teacher, "student": student}


def train_set(cfg, ref: Path):
    return build_dataset(get_task(cfg.task), "train", model_name_or_path=str(ref), data_dir=cfg.data_dir,
                         max_length=cfg.train.max_length, max_examples=cfg.train.max_examples, seed=cfg.train.seed,
                         train=True)


@torch.no_grad()
def logits_on(model: torch.nn.Module, dataset, collate) -> torch.Tensor:
    """The model's logits for every row of `dataset`, in row order."""
    batches = [model(**{k: v for k, v in b.items() if k not in ("idx", "labels")}).logits
               for b in DataLoader(dataset, batch_size=5, collate_fn=collate)]
    return torch.cat(batches)


def test_the_cached_logits_are_the_teacher_on_its_own_tokens(setup: dict) -> None:
    cfg, teacher_dir = setup["cfg"], setup["teacher_dir"]
    cached = TeacherLogits.load(teacher_dir / TrialFiles.TEACHER_LOGITS).logits
    teacher = AutoModelForSequenceClassification.from_pretrained(teacher_dir / TrialFiles.MODEL).eval()
    own, own_collate = train_set(cfg, setup["teacher"])
    theirs, theirs_collate = train_set(cfg, setup["student"])
    assert len(own) == len(theirs) == len(cached) == 16
    # The same sentences, other ids: the vocabularies differ.
    assert own[0]["input_ids"] != theirs[0]["input_ids"]
    assert torch.allclose(cached, logits_on(teacher, own, own_collate), atol=1e-5)
    # The student's ids fed to the teacher would be other logits (what must not be distilled).
    assert not torch.allclose(cached, logits_on(teacher, theirs, theirs_collate), atol=1e-3)
    # The teacher folder carries the teacher's tokenizer; the student's run will carry the student's.
    saved = AutoTokenizer.from_pretrained(teacher_dir / TrialFiles.MODEL)
    assert saved.convert_ids_to_tokens(own[0]["input_ids"])[0] == "<s>"


def test_the_student_trains_on_its_own_tokens_against_the_cached_logits_by_index(setup: dict) -> None:
    cfg, teacher_dir = setup["cfg"], setup["teacher_dir"]
    recipe, task = recipes.get_recipe("kd_lora"), get_task(cfg.task)
    assert recipe.data_reference(cfg) == str(setup["student"])
    dataset, collate = train_set(cfg, setup["student"])
    aux = recipe.prepare(cfg, task, torch.device("cpu"), str(teacher_dir), len(dataset))
    assert aux.model is None  # text: cached logits, never the teacher on the student's batch
    student = recipe.build_model(cfg, task, str(teacher_dir))
    batch = collate([dataset[i] for i in (7, 2, 11)])
    assert "token_type_ids" in batch  # BERT's inputs, which the MPNet teacher does not even take
    with torch.no_grad():
        logits = student(**{k: v for k, v in batch.items() if k not in ("idx", "labels")}).logits
    expected = recipe.loss(StepInputs(cfg, student, student, dict(batch), aux, regression=False))
    cached = TeacherLogits.load(teacher_dir / TrialFiles.TEACHER_LOGITS).logits[[7, 2, 11]]
    t = cfg.method.temperature  # kd_weight 1: the loss is the distillation term alone
    kl = torch.nn.functional.kl_div(torch.log_softmax(logits / t, -1), torch.log_softmax(cached / t, -1),
                                    log_target=True, reduction="batchmean") * t * t
    assert expected.item() == pytest.approx(kl.item(), rel=1e-4)
    # Augmentation applies to images only: a text run keeps the cached logits with train.augment on.
    aug = recipe.prepare(with_values(cfg, {"train.augment": True}), task, torch.device("cpu"), str(teacher_dir),
                         len(dataset))
    assert aug.model is None and aug.logits is not None


def test_the_whole_student_run_finishes_with_the_students_tokenizer(setup: dict) -> None:
    cfg, tmp = setup["cfg"], setup["tmp"]
    run_here(cfg, tmp / "student-run", teacher_dir=setup["teacher_dir"])
    metrics = json.loads((tmp / "student-run" / "metrics.json").read_text())
    assert metrics["method"] == "kd_lora" and metrics["metric"] is not None
    saved = AutoTokenizer.from_pretrained(tmp / "student-run" / TrialFiles.MODEL)
    assert saved.cls_token == "[CLS]" and len(saved) == len(AutoTokenizer.from_pretrained(setup["student"]))
