"""`python -m orchestrator.train` end to end: Ray Train workers, the contract files, exact evaluation,
and a worker killed with SIGKILL mid-run that resumes from its checkpoint."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import DATA, MODELS, REPO, pid_at_first_checkpoint

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory) -> Path:
    """A 2-layer, 32-wide BERT with MiniLM's tokenizer: real data, millisecond steps."""
    if not (MODELS / "minilm-l6-h384").is_dir():
        pytest.skip("offline models not found")
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    path = tmp_path_factory.mktemp("tiny-bert")
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64)
    BertForSequenceClassification(config).save_pretrained(path)
    AutoTokenizer.from_pretrained(MODELS / "minilm-l6-h384").save_pretrained(path)
    return path


def write_config(tmp_path: Path, model: Path, **method) -> Path:
    cfg = {"name": "tiny", "task": "glue/sst2", "model": str(model), "data_dir": str(DATA),
           "results_dir": str(tmp_path / "results"),
           "method": {"name": "pc_lora", "rank": 4, "decay_end": 0.5, "kd_weight": 0.5, **method},
           "train": {"epochs": 2, "batch_size": 16, "lr": 1e-3, "max_length": 32, "max_examples": 64},
           "eval": {"max_examples": 40}}
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def run_train(config: Path, out: Path, *overrides: str, env: dict | None = None, timeout: int = 400):
    args = [sys.executable, "-m", "orchestrator.train", "--config", str(config), "--out", str(out)]
    for o in overrides:
        args += ["--set", o]
    return subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def single_process_metric(out: Path, method: str) -> float:
    """Evaluate the saved deployable model in this process, without Ray, on the same split."""
    import numpy as np
    import torch
    from torch.utils.data import DataLoader

    from methods import pc_lora
    from orchestrator.config.schema import config_from_dict
    from orchestrator.tasks import build_dataset, compute_metrics, get_task, load_model

    cfg = config_from_dict(yaml.safe_load((out / "config.yaml").read_text()))
    task = get_task(cfg.task)
    model = pc_lora.load_compressed(out / "model") if method == "pc_lora" else load_model(str(out / "model"), task)
    model.eval()
    ds, collate = build_dataset(task, task.eval_split, model_name_or_path=cfg.model, data_dir=cfg.data_dir,
                                max_length=cfg.train.max_length, max_examples=cfg.eval.max_examples,
                                seed=cfg.train.seed, train=False)
    preds, labels = [], []
    with torch.no_grad():
        for batch in DataLoader(ds, batch_size=7, collate_fn=collate):
            batch.pop("idx")
            labels.append(batch.pop("labels"))
            preds.append(model(**batch).logits)
    return compute_metrics(task, torch.cat(preds).numpy(), torch.cat(labels).numpy())[task.primary_metric] + np.float64(0)


@pytest.mark.parametrize("workers", [1, 2])
def test_pc_lora_run_writes_the_contract_files(tmp_path: Path, tiny_bert: Path, workers: int) -> None:
    out = tmp_path / "run"
    proc = run_train(write_config(tmp_path, tiny_bert), out, f"resources.workers={workers}")
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert {"config.yaml", "metrics.json", "model"} <= {p.name for p in out.iterdir()}
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("task", "method", "metric_name", "metric", "accuracy", "params", "params_no_embeddings",
                "base_params", "base_params_no_embeddings", "flops", "base_flops", "trainable_params",
                "train_seconds", "world_size"):
        assert key in metrics, key
    assert metrics["world_size"] == workers and metrics["method"] == "pc_lora"
    assert metrics["params"] < metrics["base_params"] and metrics["flops"] < metrics["base_flops"]
    # The console is the tool's own lines: each epoch once (followed from epochs.jsonl), with the metric
    # and λ, which reached 0; the workers' and Ray's own output stays in Ray's logs without --verbose.
    epochs = [line for line in proc.stdout.splitlines() if " epoch " in line]
    assert [line.split(" epoch ")[1].split()[0] for line in epochs] == ["1/2", "2/2"], proc.stdout
    assert "accuracy" in epochs[-1] and "λ 0.000" in epochs[-1] and metrics["lambda"] == 0.0
    everything = proc.stdout + proc.stderr
    for noise in ("(RayTrainWorker", "(TrainController", "(raylet)", "LOAD REPORT", "mlflow.store.db.utils"):
        assert noise not in everything, f"{noise!r} on the console:\n{everything[-3000:]}"
    # exact evaluation: the same number in a single process on the saved model
    assert metrics["metric"] == pytest.approx(single_process_metric(out, "pc_lora"), abs=1e-9)


@pytest.mark.parametrize("method", ["fft", "lora"])
def test_baselines_train_and_save(tmp_path: Path, tiny_bert: Path, method: str) -> None:
    out = tmp_path / "run"
    proc = run_train(write_config(tmp_path, tiny_bert), out, f"method.name={method}")
    assert proc.returncode == 0, proc.stderr[-4000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["method"] == method
    if method == "fft":
        assert metrics["params"] == metrics["base_params"] == metrics["trainable_params"]
    else:  # merged LoRA: the deployable model is the base architecture again
        assert metrics["params"] == metrics["base_params"] and metrics["trainable_params"] < metrics["params"] / 5
    assert metrics["metric"] == pytest.approx(single_process_metric(out, method), abs=1e-9)


def test_kd_lora_trains_the_teacher_once(tmp_path: Path, tiny_bert: Path) -> None:
    cfg = write_config(tmp_path, tiny_bert, name="kd_lora", student_layers=1, teacher_epochs=1)
    first = run_train(cfg, tmp_path / "a")
    assert first.returncode == 0, first.stderr[-4000:]
    assert f"fine-tuning the {tiny_bert.name} teacher once" in first.stdout  # named by its checkpoint
    teachers = list((tmp_path / "results" / "teachers").glob("*/train_logits.safetensors"))
    assert len(teachers) == 1
    second = run_train(cfg, tmp_path / "b", "method.kd_weight=0.9", "method.rank=2")
    assert second.returncode == 0, second.stderr[-4000:]
    assert "fine-tuning the" not in second.stdout
    metrics = json.loads((tmp_path / "b" / "metrics.json").read_text())
    assert metrics["params"] < metrics["base_params"]  # one layer of two
    # the deployable student loads on its own, with the tokenizer it was trained with
    from transformers import AutoTokenizer

    saved = AutoTokenizer.from_pretrained(tmp_path / "b" / "model")
    assert saved("a fine film")["input_ids"] == AutoTokenizer.from_pretrained(tiny_bert)("a fine film")["input_ids"]


def test_killed_worker_resumes_from_its_checkpoint(tmp_path: Path, tiny_bert: Path) -> None:
    pid_file = tmp_path / "worker.pid"
    out = tmp_path / "run"
    args = [sys.executable, "-m", "orchestrator.train", "--config", str(write_config(tmp_path, tiny_bert)),
            "--out", str(out)]
    proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "ORCH_TEST_PID_FILE": str(pid_file), "ORCH_TEST_PAUSE": "120"})
    os.kill(pid_at_first_checkpoint(pid_file, proc, "worker"), signal.SIGKILL)
    output, _ = proc.communicate(timeout=400)
    assert proc.returncode == 0, output[-4000:]
    # Decided from the run's own record (streamed stdout can lose lines on the way to the driver): epoch 1
    # ran once, then the replaced worker resumed from its checkpoint and trained epoch 2.
    epochs = [json.loads(line) for line in (out / "epochs.jsonl").read_text().splitlines()]
    assert [(e["epoch"], e["resumed_from_epoch"]) for e in epochs] == [(1, 0), (2, 1)]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epoch"] == 2 and metrics["resumed_from_epoch"] == 1
