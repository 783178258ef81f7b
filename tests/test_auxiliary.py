"""Auxiliary models (orchestrator/recipes/auxiliary.py): declared by the recipe, built once and cached by the
engine (orchestrator/engine/run.py `ensure_auxiliary`), and a KD-LoRA student's own FFT ceiling reported as a
reference beside the teacher, with the share of it that student's best trial reaches."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from orchestrator import recipes
from orchestrator.config.records import TrialFiles
from orchestrator.config.schema import Config, with_values
from orchestrator.engine import run
from orchestrator.recipes.auxiliary import STUDENT_CEILING, TEACHER

TEACHER_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
STUDENT = "/models/minilm-l3-h384"
SIZES = {"params": 100.0, "params_no_embeddings": 60.0, "flops": 1000.0, "train_seconds": 60.0}


def kd_config(tmp_path: Path, **values: object) -> Config:
    return with_values(Config(), {"name": "aux", "method.name": "kd_lora", "task": "glue/sst2",
                                  "model": TEACHER_MODEL, "results_dir": str(tmp_path / "results"), **values})


def roles(cfg: Config) -> list[str]:
    return [aux.role for aux in recipes.get_recipe(cfg.method.name).auxiliary_models(cfg)]


def test_kd_lora_with_a_student_declares_the_teacher_and_the_students_own_fft_ceiling(tmp_path: Path) -> None:
    cfg = kd_config(tmp_path, **{"method.student": STUDENT, "method.teacher_epochs": 2, "method.teacher_lr": 3e-5})
    teacher, ceiling = recipes.get_recipe("kd_lora").auxiliary_models(cfg)
    assert (teacher.role, ceiling.role) == (TEACHER, STUDENT_CEILING)
    assert teacher.config.model == TEACHER_MODEL and teacher.emit_train_logits
    # the ceiling: the student's own full fine-tuning, on the teacher's task, data and budget
    c = ceiling.config
    assert (c.method.name, c.model, c.task, c.train.epochs, c.train.lr) == ("fft", STUDENT, "glue/sst2", 2, 3e-5)
    assert not ceiling.emit_train_logits and ceiling.judges == STUDENT
    assert ceiling.folder(cfg.results_dir).parent.name == "ceilings" and ceiling.key != teacher.key
    # a student cut from the teacher has no checkpoint of its own; the switch turns the ceiling off
    assert roles(kd_config(tmp_path, **{"method.student_layers": 2})) == [TEACHER]
    assert roles(with_values(cfg, {"method.student_ceiling": False})) == [TEACHER]
    assert roles(with_values(cfg, {"method.name": "pc_lora"})) == []  # the paper's: the model itself at λ = 1
    assert roles(with_values(cfg, {"method.name": "pc_lora", "method.kd_teacher": "finetuned"})) == [TEACHER]
    assert roles(with_values(cfg, {"method.name": "fft"})) == []


@pytest.fixture
def fake_fit(monkeypatch):
    """run.fit replaced by one that writes what a finished FFT run leaves, and records each call."""
    calls: list[dict] = []

    def fit(cfg: Config, out_dir: Path, **kwargs) -> dict:
        calls.append({"model": cfg.model, "method": cfg.method.name, "out_dir": Path(out_dir), **kwargs})
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        metrics = {"metric": 0.9 if cfg.model == STUDENT else 0.95, "metric_name": "accuracy", **SIZES}
        (Path(out_dir) / TrialFiles.METRICS).write_text(json.dumps(metrics))
        if kwargs.get("emit_train_logits"):
            (Path(out_dir) / TrialFiles.TEACHER_LOGITS).write_bytes(b"logits")
        return metrics

    monkeypatch.setattr(run, "fit", fit)
    return calls


def test_declared_models_are_built_once_then_found_in_the_cache(tmp_path: Path, fake_fit, capsys) -> None:
    cfg = kd_config(tmp_path, **{"method.student": STUDENT})
    first = run.ensure_auxiliary(cfg, "parent-run")
    assert [(c["model"], c["method"], c["role"], c["parent_run_id"]) for c in fake_fit] == [
        (TEACHER_MODEL, "fft", TEACHER, "parent-run"), (STUDENT, "fft", STUDENT_CEILING, "parent-run")]
    assert [c["emit_train_logits"] for c in fake_fit] == [True, False]  # only the teacher's logits are read
    out = capsys.readouterr().out
    assert "fine-tuning the all-MiniLM-L6-v2 teacher once" in out and "fine-tuning the student's own FFT ceiling once" in out
    assert first[TEACHER] == tmp_path / "results" / "teachers" / run.teacher_key(cfg)
    assert first[STUDENT_CEILING].parent == tmp_path / "results" / "ceilings"
    # the second trial (other KD settings, same teacher and student) trains nothing
    second = run.ensure_auxiliary(with_values(cfg, {"method.rank": 4, "method.kd_weight": 0.9}), "parent-run")
    assert second == first and len(fake_fit) == 2 and "fine-tuning" not in capsys.readouterr().out
    # another student: only its own ceiling is new
    run.ensure_auxiliary(with_values(cfg, {"method.student": "/models/other"}))
    assert [c["model"] for c in fake_fit[2:]] == ["/models/other"]


def test_a_teacher_cached_by_the_code_before_auxiliary_models_is_found(tmp_path: Path, fake_fit) -> None:
    """results/teachers/<key>/ with the key the old engine/run.py computed (the literal below) is reused as it is."""
    cfg = kd_config(tmp_path)
    old_key = "glue-sst2-all-MiniLM-L6-v2-2e55e1cb8f3e"  # run.teacher_key of this config before issue 33 item 3
    assert run.teacher_key(cfg) == old_key
    folder = tmp_path / "results" / "teachers" / old_key
    folder.mkdir(parents=True)
    (folder / TrialFiles.METRICS).write_text(json.dumps({"metric": 0.95, "metric_name": "accuracy", **SIZES}))
    (folder / TrialFiles.TEACHER_LOGITS).write_bytes(b"logits")
    assert run.ensure_auxiliary(cfg) == {TEACHER: folder} and fake_fit == []
    # PC-LoRA with the fine-tuned teacher shares the same folder
    pc = with_values(cfg, {"method.name": "pc_lora", "method.kd_teacher": "finetuned"})
    assert run.ensure_auxiliary(pc) == {TEACHER: folder} and fake_fit == []


def test_a_ceiling_already_fine_tuned_as_a_teacher_is_not_trained_again(tmp_path: Path, fake_fit) -> None:
    """The same FFT run (same key) cached under the teacher's folder serves as the ceiling."""
    cfg = kd_config(tmp_path, **{"method.student": TEACHER_MODEL})  # a student the size of its teacher
    found = run.ensure_auxiliary(cfg)
    assert len(fake_fit) == 1 and found[STUDENT_CEILING] == found[TEACHER]


def test_a_run_needed_as_a_teacher_and_as_a_ceiling_at_once_is_trained_once(tmp_path: Path, fake_fit) -> None:
    """Two sweeps start together: one needs MiniLM-L6's FFT as its teacher, the other as a student's ceiling (same
    key, other role folders). The ceiling's builder waits on the teacher's and then finds it cached."""
    import threading

    cfg = kd_config(tmp_path, **{"method.student": TEACHER_MODEL})
    teacher, ceiling = recipes.get_recipe("kd_lora").auxiliary_models(cfg)
    assert teacher.key == ceiling.key and teacher.folder(cfg.results_dir) != ceiling.folder(cfg.results_dir)
    assert teacher.lock(cfg.results_dir) == ceiling.lock(cfg.results_dir)
    training, release = threading.Event(), threading.Event()
    write = run.fit

    def slow_fit(*args, **kwargs) -> dict:
        training.set()
        assert release.wait(timeout=60)
        return write(*args, **kwargs)

    run.fit = slow_fit  # fake_fit's monkeypatch restores the original after the test
    found: dict[str, Path] = {}
    builders = [threading.Thread(target=lambda aux=aux: found.__setitem__(aux.role, run.ensure_aux(
        aux, cfg.results_dir, "two-sweeps"))) for aux in (teacher, ceiling)]
    builders[0].start()
    assert training.wait(timeout=60)
    builders[1].start()
    builders[1].join(timeout=0.5)
    assert builders[1].is_alive()  # waiting on the teacher's lock, not training a second copy
    release.set()
    for builder in builders:
        builder.join(timeout=60)
    assert len(fake_fit) == 1 and found[STUDENT_CEILING] == found[TEACHER] == teacher.folder(cfg.results_dir)


def kd_trials(tmp_path: Path) -> tuple[Config, pd.DataFrame]:
    """A sweep's trials.csv rows: two KD-LoRA trials of STUDENT, one cut student, one PC-LoRA."""
    cfg = kd_config(tmp_path)
    searched = "method.name,method.rank,method.student,method.student_layers"
    base = {"searched": searched, "full_budget": True, "metric_name": "accuracy", "base_params": 100.0,
            "base_params_no_embeddings": 60.0, "base_flops": 1000.0, "params": 50.0, "params_no_embeddings": 30.0,
            "flops": 500.0, "status": "complete"}
    rows = [{"trial_id": "t_0", "method.name": "kd_lora", "method.rank": 4, "method.student": STUDENT, "metric": 0.72},
            {"trial_id": "t_1", "method.name": "kd_lora", "method.rank": 8, "method.student": STUDENT, "metric": 0.81},
            {"trial_id": "t_2", "method.name": "kd_lora", "method.rank": 8, "method.student_layers": 2, "metric": 0.93},
            {"trial_id": "t_3", "method.name": "pc_lora", "method.rank": 8, "metric": 0.85}]
    return cfg, pd.DataFrame([{**base, **row} for row in rows])


def test_the_ceiling_is_a_reference_and_its_students_best_states_its_share(tmp_path: Path, fake_fit) -> None:
    from orchestrator.reports.plots import plot_front
    from orchestrator.reports.references import judged, references_of
    from orchestrator.reports.report import front_of, pareto_markdown
    from orchestrator.search.sweep_console import reference_lines

    cfg, trials = kd_trials(tmp_path)
    run.ensure_auxiliary(with_values(cfg, {"method.student": STUDENT}))  # teacher 0.95, ceiling 0.90
    refs = references_of(cfg, trials)
    assert [r.name for r in refs] == ["FFT teacher (all-MiniLM-L6-v2)", "student's FFT ceiling (minilm-l3-h384)"]
    teacher, ceiling = refs
    assert ceiling.metric == 0.9 and ceiling.judges == STUDENT and teacher.judges is None
    front = front_of(cfg, trials)
    # the ceiling judges its own student's best (0.81 of 0.90), not the front's (0.93, a cut student)
    assert "; the best minilm-l3-h384 student is 90.0 % of it" in judged(ceiling, trials, front)
    assert "; the front's best is 97.9 % of it" in judged(teacher, trials, front)
    sweep_dir = Path(cfg.results_dir) / cfg.name
    sweep_dir.mkdir(parents=True)
    closing = reference_lines(cfg, trials, front, sweep_dir)  # the console's closing summary
    assert len(closing) == 2 and closing[1].startswith("reference: student's FFT ceiling (minilm-l3-h384) accuracy")
    assert "is 90.0 % of it" in closing[1]
    md = pareto_markdown(cfg, front, trials, refs)
    assert "| student's FFT ceiling (minilm-l3-h384) | 0.9 |" in md and "| 90.0 |" in md
    plot_front(cfg, trials, front, sweep_dir / "pareto.png", refs)  # a line per reference, the ceiling's too
    svg = (sweep_dir / "pareto.svg").read_text()
    assert 'id="reference-1-params"' in svg and "student's FFT ceiling" in svg.replace("&#x27;", "'")
    # turned off: no ceiling is declared, so none is reported (even with one cached)
    off = references_of(with_values(cfg, {"method.student_ceiling": False}), trials)
    assert [r.name for r in off] == ["FFT teacher (all-MiniLM-L6-v2)"]
