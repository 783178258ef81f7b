"""Leaderboards from hand-made results folders: which trials count, the exact table cells, the
compression budgets, provenance, idempotence and atomic writes. No Ray; one test opens a real
(sqlite) MLflow store."""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from orchestrator.cli import run_main
from orchestrator.config.schema import ConfigError
from orchestrator.leaderboard import main as leaderboard_main
from orchestrator.reports import leaderboard

BASE_PARAMS, BASE_FLOPS = 100_000_000, 10_000_000_000
MODEL = "/models/bert-base-uncased"  # a local folder: tables show its name
MAY_1 = datetime(2024, 5, 1, 12, tzinfo=timezone.utc).timestamp()
MAY_2 = datetime(2024, 5, 2, 12, tzinfo=timezone.utc).timestamp()
METHOD_DEFAULTS = {"method.rank": 8, "method.alpha": None, "method.decay_schedule": "sine", "method.decay_end": 0.8,
                   "method.kd_weight": 0.5, "method.temperature": 2.0, "method.teacher": None,
                   "method.student": None, "method.student_layers": None}


def trial(trial_id: str, task: str, method: str, metrics: dict[str, float], kept: tuple[float, float] = (1.0, 1.0),
          status: str = "complete", **keys: Any) -> dict[str, Any]:
    """One row as sweep_outputs.collect_rows writes it: id, status, config keys, searched, metrics."""
    metric_name = {"glue/cola": "mcc", "glue/mrpc": "acc_and_f1", "glue/stsb": "pearson_spearman_mean"}.get(
        task, "accuracy")
    metric = metrics.get(metric_name, sum(metrics.values()) / len(metrics))
    row = {"trial_id": trial_id, "status": status, "full_budget": status == "complete", "name": "sweep",
           "task": task, "model": MODEL, "data_dir": None, "method.name": method, **METHOD_DEFAULTS,
           "train.epochs": 3, "train.max_examples": None, "train.seed": 0,
           "searched": "method.name,method.rank", "epoch": 3, "loss": 0.3, **metrics,
           "metric_name": metric_name, "metric": metric,
           "params": int(BASE_PARAMS * kept[0]), "params_no_embeddings": 1, "base_params": BASE_PARAMS,
           "base_params_no_embeddings": 1, "flops": int(BASE_FLOPS * kept[1]), "base_flops": BASE_FLOPS,
           "trainable_params": 1, "train_seconds": 1.0}
    row.update(keys)
    return row


def write_sweep(results: Path, name: str, rows: list[dict[str, Any]], mtime: float = MAY_1) -> Path:
    folder = results / name
    folder.mkdir(parents=True)
    (folder / "sweep.yaml").write_text(f"name: {name}\n")
    path = folder / "trials.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    for row in rows:  # each trial's own record of when it ran (the leaderboards' date)
        trial_dir = folder / "trials" / str(row["trial_id"])
        trial_dir.mkdir(parents=True, exist_ok=True)
        (trial_dir / "epochs.jsonl").write_text(json.dumps({"epoch": 1, "time": mtime}) + "\n")
    os.utime(path, (mtime, mtime))
    return path


def write_run(folder: Path, task: str, method: str, metrics: dict[str, Any], mtime: float = MAY_2,
              **method_keys: Any) -> None:
    """A finished `orchestrator.train` run: config.yaml, then metrics.json."""
    folder.mkdir(parents=True, exist_ok=True)
    config = {"name": folder.name, "task": task, "model": MODEL, "results_dir": "results",
              "method": {"name": method, "rank": 8, "decay_schedule": "cosine", "decay_end": 0.5,
                         "kd_weight": 0.25, **method_keys},
              "train": {"epochs": 2, "max_examples": 1000}, "search": {"objectives": ["metric:max"]}, "space": {}}
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    full = {"task": task, "method": method, "full_budget": True, "base_params": BASE_PARAMS, "base_flops": BASE_FLOPS,
            "worker_start_unix": mtime, **metrics}
    (folder / "metrics.json").write_text(json.dumps(full))
    os.utime(folder / "metrics.json", (mtime, mtime))


def make_results(root: Path) -> Path:
    results = root / "results"
    results.mkdir()
    write_sweep(results, "glue-cola", [
        trial("c1", "glue/cola", "pc_lora", {"mcc": 0.50}, (0.04, 0.03), **{"method.rank": 8}),
        trial("c2", "glue/cola", "pc_lora", {"mcc": 0.55}, (0.08, 0.06), **{"method.rank": 16}),
        # ASHA stopped it early: never counted, however good its last report
        trial("c3", "glue/cola", "pc_lora", {"mcc": 0.90}, (0.01, 0.01), status="stopped", **{"method.rank": 4}),
        trial("c4", "glue/cola", "pc_lora", {"mcc": 0.95}, (0.01, 0.01), status="error"),
        # exactly 50 % of the FLOPs (counts for the 50 % budget), 60 % of the parameters (does not)
        trial("c5", "glue/cola", "kd_lora", {"mcc": 0.57}, (0.60, 0.50),
              **{"method.student_layers": 6.0, "method.kd_weight": 0.4375}),
        trial("c6", "glue/cola", "fft", {"mcc": 0.60}),
        trial("c7", "glue/cola", "lora", {"mcc": 0.58}, **{"method.rank": 8}),
    ])
    write_sweep(results, "glue-mrpc", [
        trial("m1", "glue/mrpc", "pc_lora", {"accuracy": 0.80, "f1": 0.86, "acc_and_f1": 0.83}, (0.08, 0.06),
              device="NVIDIA H100 80GB HBM3", **{"method.rank": 16}),
        trial("m2", "glue/mrpc", "fft", {"accuracy": 0.85, "f1": 0.89, "acc_and_f1": 0.87},
              device="NVIDIA H100 80GB HBM3"),
    ], mtime=MAY_2)
    write_sweep(results, "glue-stsb", [
        trial("s1", "glue/stsb", "pc_lora", {"pearson": 0.85, "spearman": 0.84, "pearson_spearman_mean": 0.845},
              (0.04, 0.03)),
    ])
    write_sweep(results, "cifar", [
        trial("v1", "cifar10", "pc_lora", {"accuracy": 0.91}, (0.06, 0.11), model="google/vit-base-patch16-224"),
        trial("v2", "cifar10", "fft", {"accuracy": 0.98}, model="google/vit-base-patch16-224"),
    ])
    # A sweep trial's own metrics.json duplicates its trials.csv row: counted once.
    write_run(results / "glue-cola" / "trials" / "c2", "glue/cola", "pc_lora",
              {"metric_name": "mcc", "metric": 0.55, "mcc": 0.55, "params": 8_000_000, "flops": 600_000_000})
    # A single run of orchestrator.train, in a folder of its own.
    write_run(results / "runs" / "sst2-pc", "glue/sst2", "pc_lora",
              {"metric_name": "accuracy", "metric": 0.9, "accuracy": 0.9, "params": 5_000_000,
               "flops": 400_000_000, "device": "cpu"})
    # A sweep still running: no trials.csv yet, one trial finished, one not.
    write_run(results / "running" / "trials" / "r1", "glue/rte", "lora",
              {"metric_name": "accuracy", "metric": 0.66, "accuracy": 0.66, "params": BASE_PARAMS,
               "flops": BASE_FLOPS})
    (results / "running" / "trials" / "r2").mkdir(parents=True)
    (results / "running" / "trials" / "r2" / "metrics.json").write_text(json.dumps({"full_budget": False}))
    # Never counted: a KD-LoRA teacher, a student's FFT ceiling, MLflow's artifact copy, a hidden folder, our own
    # output folder.
    for skipped in ("teachers/glue-cola-bert-abc", "ceilings/glue-cola-bert-def", "mlartifacts/1/abc/artifacts",
                    ".cache/x"):
        write_run(results / skipped, "glue/cola", "fft",
                  {"metric_name": "mcc", "metric": 0.99, "mcc": 0.99, "params": BASE_PARAMS, "flops": BASE_FLOPS})
    write_sweep(results, ".old", [trial("h1", "glue/cola", "fft", {"mcc": 0.99})])
    write_sweep(results, "leaderboards", [trial("l1", "glue/cola", "fft", {"mcc": 0.99})])
    return results


def md_table(text: str, first_header: str, after: str | None = None) -> list[dict[str, str]]:
    """The rows of the first markdown table whose header starts with `first_header` (after the line `after`)."""
    lines = text.splitlines()
    start = lines.index(after) if after else 0
    i = next(i for i in range(start, len(lines)) if lines[i].startswith(f"| {first_header} |"))
    header = [c.strip() for c in lines[i].strip("|").split("|")]
    rows = []
    for line in lines[i + 2:]:
        if not line.startswith("|"):
            break
        rows.append(dict(zip(header, [c.strip() for c in line.strip("|").split("|")], strict=True)))
    return rows


def row_of(rows: list[dict[str, str]], **match: str) -> dict[str, str]:
    found = [r for r in rows if all(r[k] == v for k, v in match.items())]
    assert len(found) == 1, (match, rows)
    return found[0]


@pytest.fixture
def results(tmp_path: Path) -> Path:
    return make_results(tmp_path)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Built once for the tests that only read the leaderboards (the plots take a second or two)."""
    results = make_results(tmp_path_factory.mktemp("built"))
    leaderboard.build(results)
    return results / "leaderboards"


def test_gather_keeps_finished_trials_once_with_provenance(results: Path) -> None:
    frame = leaderboard.gather(results)
    assert sorted(frame["trial_id"]) == ["c1", "c2", "c5", "c6", "c7", "m1", "m2", "r1", "s1", "sst2-pc", "v1", "v2"]
    by_id = frame.set_index("trial_id")
    assert by_id.loc["c1", "sweep"] == "glue-cola" and by_id.loc["c1", "date"] == "2024-05-01"
    assert by_id.loc["c1", "device"] == "not recorded"  # this trials.csv has no device column
    assert by_id.loc["m1", "device"] == "NVIDIA H100 80GB HBM3" and by_id.loc["m1", "date"] == "2024-05-02"
    assert by_id.loc["c1", "command"] == f"python -m orchestrator.sweep --config {results / 'glue-cola' / 'sweep.yaml'}"
    run = by_id.loc["sst2-pc"]
    assert run["sweep"] == "runs/sst2-pc" and run["model"] == MODEL and run["method.rank"] == 8
    assert run["command"] == (f"python -m orchestrator.train --config {results / 'runs/sst2-pc/config.yaml'} "
                              f"--out {results / 'runs/sst2-pc'}")
    assert by_id.loc["r1", "sweep"] == "running" and "orchestrator.sweep" in by_id.loc["r1", "command"]
    assert by_id.loc["v1", "model_name"] == "vit-base-patch16-224"


def test_glue_table_cells_and_score(built: Path) -> None:
    text = (built / "glue.md").read_text()
    rows = md_table(text, "model")
    assert [(r["model"], r["method"]) for r in rows] == [
        ("bert-base-uncased", "fft"), ("bert-base-uncased", "lora"), ("bert-base-uncased", "pc_lora"),
        ("bert-base-uncased", "kd_lora")]
    pc = row_of(rows, method="pc_lora")
    # the best of the two finished configurations (rank 16: 0.55), not the stopped (0.90) or errored (0.95) trial
    assert pc["CoLA (MCC)"] == "55.0" and pc["SST-2 (acc)"] == "90.0"
    assert (pc["MRPC (acc)"], pc["MRPC (F1)"], pc["STS-B (P)"], pc["STS-B (S)"]) == ("80.0", "86.0", "85.0", "84.0")
    assert pc["QQP (acc)"] == pc["MNLI-m"] == pc["MNLI-mm"] == pc["RTE (acc)"] == "–"
    # mean of the primaries of the four tasks present: (55 + 90 + 83 + 84.5) / 4
    assert pc["GLUE score"] == "78.1" and pc["tasks"] == "4/9"
    assert pc["params kept %"] == "4.0–8.0" and pc["FLOPs kept %"] == "3.0–6.0"
    assert pc["configuration"] == "per task, see Sources"
    fft = row_of(rows, method="fft")
    # the teacher's, MLflow artifact's and hidden folders' FFT at 0.99 are not counted
    assert fft["CoLA (MCC)"] == "60.0" and fft["MRPC (acc)"] == "85.0" and fft["GLUE score"] == "73.5"
    assert fft["params kept %"] == "100.0" and fft["configuration"] == "–"
    kd = row_of(rows, method="kd_lora")
    assert kd["CoLA (MCC)"] == "57.0 (95.0 % FFT; no ceiling: a student cut from the teacher)"
    assert kd["configuration"] == "r=8, student=6 layers, kd=0.44, T=2"
    lora = row_of(rows, method="lora")
    assert lora["RTE (acc)"] == "66.0" and lora["CoLA (MCC)"] == "58.0"
    sources = md_table(text, "model", after="### Sources")
    src = row_of(sources, method="pc_lora", task="glue/cola")
    assert (src["configuration"], src["sweep"], src["trial"], src["date"], src["device"]) == (
        "r=16, sine to 0.8, kd=0.5, zero start", "glue-cola", "c2", "2024-05-01", "not recorded")
    assert row_of(sources, method="pc_lora", task="glue/mrpc")["device"] == "NVIDIA H100 80GB HBM3"
    run = row_of(sources, method="pc_lora", task="glue/sst2")
    assert (run["sweep"], run["train examples"], run["epochs"]) == ("runs/sst2-pc", "1000", "2")
    assert (f"- `glue-cola`: `python -m orchestrator.sweep --config {built.parent / 'glue-cola' / 'sweep.yaml'}`"
            in text.splitlines())


def test_cifar_table(built: Path) -> None:
    rows = md_table((built / "cifar.md").read_text(), "model")
    assert [(r["model"], r["method"], r["CIFAR-10 (acc)"], r["CIFAR-100 (acc)"], r["params kept %"])
            for r in rows] == [("vit-base-patch16-224", "fft", "98.0", "–", "100.0"),
                               ("vit-base-patch16-224", "pc_lora", "91.0", "–", "6.0")]


def test_compression_budgets_pick_the_best_trial_under_each(built: Path) -> None:
    text = (built / "compression.md").read_text()
    section = "## glue/cola — bert-base-uncased (training examples: all; epochs: 3; max length: ?)"  # its own budget
    assert "References: FFT 60.0 (glue-cola/c6); LoRA 58.0 (glue-cola/c7)." in text.split(section)[1].split("##")[0]
    by_params = {r["budget"]: r for r in md_table(text, "budget", after=section)}
    assert {b: (r["mcc"], r["sweep/trial"]) for b, r in by_params.items()} == {
        "≤ 50 %": ("55.0", "glue-cola/c2"), "≤ 25 %": ("55.0", "glue-cola/c2"),
        "≤ 10 %": ("55.0", "glue-cola/c2"), "≤ 5 %": ("50.0", "glue-cola/c1")}
    lines = text.splitlines()
    flops_at = lines.index("By FLOPs:", lines.index(section))
    by_flops = {r["budget"]: r for r in md_table(text, "budget", after=lines[flops_at])}
    # kd_lora keeps exactly 50 % of the FLOPs (at or under counts) and is the best there
    assert {b: (r["mcc"], r["method"], r["FLOPs kept %"]) for b, r in by_flops.items()} == {
        "≤ 50 %": ("57.0", "kd_lora", "50.0"), "≤ 25 %": ("55.0", "pc_lora", "6.0"),
        "≤ 10 %": ("55.0", "pc_lora", "6.0"), "≤ 5 %": ("50.0", "pc_lora", "3.0")}
    rte = text.split("## glue/rte — bert-base-uncased")[1].split("##")[0]
    assert "| ≤ 50 % | – |" in rte  # LoRA keeps everything: no trial under any budget


def test_every_task_gets_a_plot_and_the_readme_embeds_them(built: Path) -> None:
    pngs = sorted(p.name for p in built.glob("*.png"))
    assert pngs == ["cifar10.png", "glue-cola.png", "glue-mrpc.png", "glue-rte.png", "glue-sst2.png",
                    "glue-stsb.png"]
    for name in pngs:
        assert (built / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and (built / name).stat().st_size > 10_000
    readme = (built / "README.md").read_text()
    assert all(f"]({name})" in readme for name in pngs)


def test_rerun_is_byte_identical_and_leaves_no_temporary_files(results: Path) -> None:
    first = leaderboard.build(results)
    contents = {p.name: p.read_bytes() for p in first}
    second = leaderboard.build(results)
    assert second == first
    assert {p.name: p.read_bytes() for p in second} == contents
    assert sorted(p.name for p in (results / "leaderboards").iterdir()) == sorted(
        [*contents, "trials.csv", "sweep.yaml", "trials"])  # the decoy sweep written by make_results
    assert not list(results.rglob("*.tmp"))


def test_a_failed_write_keeps_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "glue.md"
    path.write_text("old\n")
    with pytest.raises(RuntimeError), leaderboard._atomic(path) as tmp:
        tmp.write_text("half of the new")
        raise RuntimeError("disk full")
    assert path.read_text() == "old\n" and list(tmp_path.iterdir()) == [path]


def test_empty_results_write_empty_tables(tmp_path: Path) -> None:
    written = leaderboard.build(tmp_path)
    assert [p.name for p in written] == ["README.md", "cifar.md", "compression.md", "glue.md", "imdb.md", "index.html"]
    assert "No finished full-budget trial of these tasks yet." in (tmp_path / "leaderboards" / "glue.md").read_text()


def test_bad_inputs_are_refused_with_the_file_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        run_main(leaderboard_main, ["--results", str(tmp_path / "nowhere")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"--results: {tmp_path / 'nowhere'} is not a folder" in err
    from orchestrator.base.shell import python_command

    # the advice names the running interpreter, so it works pasted (issue 32 item 1)
    assert f"({python_command()} -m orchestrator sweep --config FILE)" in err
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "trials.csv").write_text("trial_id,metric\nx,0.5\n")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "metrics.json").write_text(json.dumps({"full_budget": True, "metric": 0.5}))
    with pytest.raises(ConfigError) as err:
        leaderboard.gather(tmp_path)
    assert len(err.value.problems) == 2
    assert f"{tmp_path / 'bad' / 'trials.csv'}: missing column(s) full_budget, task" in err.value.problems[0]
    assert f"{tmp_path / 'run' / 'metrics.json'}: no config.yaml beside it" in err.value.problems[1]
    # a sweep's refresh only warns: its own results are already written
    assert leaderboard.refresh(tmp_path) == []
    assert "warning: leaderboards not refreshed" in capsys.readouterr().err
    assert not (tmp_path / "leaderboards").exists()


def test_main_prints_what_it_wrote(results: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert leaderboard_main(["--results", str(results)]) == 0
    out = capsys.readouterr().out.splitlines()
    # 3 tables, README, index.html and a PNG + SVG per task (6 tasks)
    assert f"wrote {results / 'leaderboards' / 'glue.md'}" in out and len(out) == 6 + 2 * 6


def test_refresh_writes_the_leaderboards(results: Path) -> None:
    written = leaderboard.refresh(results)
    assert results / "leaderboards" / "compression.md" in written


def test_mlflow_runs_are_added_once(results: Path) -> None:
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{results.parent / 'mlflow.db'}"
    client = MlflowClient(uri)

    def run(experiment: str, trial_id: str, params: dict[str, str], metrics: dict[str, float],
            status: str = "FINISHED", full_budget: str = "true", **tags: str) -> None:
        found = client.get_experiment_by_name(experiment)
        exp_id = found.experiment_id if found else client.create_experiment(experiment)
        r = client.create_run(exp_id, tags={"trial_id": trial_id, "full_budget": full_budget,
                                            "mlflow.parentRunId": "p", **tags})
        for k, v in params.items():
            client.log_param(r.info.run_id, k, v)
        for k, v in metrics.items():
            client.log_metric(r.info.run_id, k, v)
        client.set_terminated(r.info.run_id, status)

    cost = {"params": 3e6, "base_params": BASE_PARAMS, "flops": 2e8, "base_flops": BASE_FLOPS}
    qnli = {"task": "glue/qnli", "model": MODEL, "method.name": "pc_lora", "method.rank": "32",
            "method.student_layers": "null", "results_dir": "results"}
    run("glue-cola", "c2", {"task": "glue/cola", "model": MODEL, "method.name": "pc_lora"},
        {"metric": 0.55, "mcc": 0.55, **cost})  # already in glue-cola/trials.csv
    run("glue-qnli", "q1", qnli, {"metric": 0.88, "accuracy": 0.88, **cost})
    run("glue-qnli", "q2", qnli, {"metric": 0.99, "accuracy": 0.99, **cost}, status="KILLED", full_budget="false")
    run("glue-qnli", "q3", qnli, {"metric": 0.98, "accuracy": 0.98, **cost}, status="FAILED")
    run("teacher-glue-qnli-abc", "t", {**qnli, "method.name": "fft"}, {"metric": 0.97, **cost})  # older layout
    run("glue-qnli", "t2", {**qnli, "method.name": "fft"}, {"metric": 0.96, **cost}, sweep_role="teacher")
    run("glue-qnli", "s2", {**qnli, "method.name": "fft"}, {"metric": 0.95, **cost}, sweep_role="student_ceiling")
    frame = leaderboard.gather(results, tracking_uri=uri)
    added = frame[frame["source"] == "mlflow"]
    assert list(added["trial_id"]) == ["q1"] and added.iloc[0]["method.rank"] == 32
    assert added.iloc[0]["command"] == "python -m orchestrator.sweep --config results/glue-qnli/sweep.yaml"
    assert (frame["trial_id"] == "c2").sum() == 1
    leaderboard_main(["--results", str(results), "--tracking-uri", uri])
    pc = row_of(md_table((results / "leaderboards" / "glue.md").read_text(), "model"), method="pc_lora")
    assert pc["QNLI (acc)"] == "88.0" and pc["tasks"] == "5/9"


def test_compression_reports_both_parameter_bases(tmp_path: Path) -> None:
    """PC-LoRA keeps the embeddings: 55 % of the whole model can be 8 % of the encoder, the papers' basis."""
    results = tmp_path / "results"
    rows = [trial("f1", "glue/sst2", "fft", {"accuracy": 0.90}, params_no_embeddings=50, base_params_no_embeddings=50),
            trial("p1", "glue/sst2", "pc_lora", {"accuracy": 0.85}, kept=(0.55, 0.11), params_no_embeddings=4,
                  base_params_no_embeddings=50)]
    write_sweep(results, "bases", rows)
    leaderboard.build(results)
    text = (results / "leaderboards" / "compression.md").read_text()
    by_whole = {r["budget"]: r for r in md_table(text, "budget", after="By parameters:")}
    by_encoder = {r["budget"]: r for r in md_table(text, "budget", after="By encoder parameters (no embeddings):")}
    assert by_whole["≤ 10 %"]["method"] == "–" and by_whole["≤ 50 %"]["method"] == "–"
    assert by_encoder["≤ 10 %"]["method"] == "pc_lora"
    assert by_encoder["≤ 10 %"]["encoder parameters (no embeddings) kept %"] == "8.0"


def test_dates_come_from_the_trials_own_record_not_file_times(tmp_path: Path) -> None:
    results = tmp_path / "results"
    csv = write_sweep(results, "dated", [trial("d1", "glue/sst2", "fft", {"accuracy": 0.9})], mtime=MAY_1)
    now = datetime.now(timezone.utc).timestamp()
    os.utime(csv, (now, now))  # a fresh clone: every file is new
    assert leaderboard.gather(results).set_index("trial_id").loc["d1", "date"] == "2024-05-01"
    (results / "dated" / "trials" / "d1" / "epochs.jsonl").unlink()
    assert leaderboard.gather(results).set_index("trial_id").loc["d1", "date"] == "not recorded"


def test_only_sweeps_in_the_manifest_reach_the_tables_and_only_they_refresh_them(tmp_path: Path) -> None:
    results = tmp_path / "results"
    write_sweep(results, "listed", [trial("l1", "glue/sst2", "fft", {"accuracy": 0.90})])
    write_sweep(results, "quickstart", [trial("q1", "glue/sst2", "pc_lora", {"accuracy": 0.99})])
    assert leaderboard.refresh(results, sweep="quickstart") == []  # no manifest: a sweep writes no board
    assert not (results / "leaderboards").exists()
    (results / "leaderboards").mkdir()
    (results / "leaderboards" / "manifest.yaml").write_text("sweeps: [listed]\n")
    assert leaderboard.refresh(results, sweep="quickstart") == []
    assert sorted(p.name for p in (results / "leaderboards").iterdir()) == ["manifest.yaml"]
    written = leaderboard.refresh(results, sweep="listed")
    assert results / "leaderboards" / "glue.md" in written
    text = (results / "leaderboards" / "glue.md").read_text()
    assert "| 90.0 |" in text and "99.0" not in text  # the unlisted sweep's better trial is not on the board
    (results / "leaderboards" / "manifest.yaml").write_text("sweeps: [listed, missing]\n")
    with pytest.raises(ConfigError, match="sweep 'missing' has no"):
        leaderboard.build(results)


def test_a_cell_at_chance_is_marked(tmp_path: Path) -> None:
    results = tmp_path / "results"
    write_sweep(results, "s", [trial("f1", "glue/mrpc", "fft", {"accuracy": 0.80, "f1": 0.85}),
                               trial("p1", "glue/mrpc", "pc_lora", {"accuracy": 0.684, "f1": 0.812})])
    leaderboard.build(results)
    text = (results / "leaderboards" / "glue.md").read_text()
    pc_row = next(line for line in text.splitlines() if line.startswith("| bert-base-uncased | pc_lora"))
    fft_row = next(line for line in text.splitlines() if line.startswith("| bert-base-uncased | fft"))
    assert "68.4 †" in pc_row and "†" not in fft_row
    assert "† at or below the best constant prediction" in text


def test_a_cell_that_collapsed_on_the_way_is_marked(tmp_path: Path) -> None:
    """A run above the constant prediction that lost most of its best epoch's gain over it gets ‡ (read from its
    epochs file), one that kept it does not; the legend says what ‡ means, and the HTML page carries it too."""
    results = tmp_path / "results"
    write_sweep(results, "s", [trial("f1", "glue/cola", "fft", {"mcc": 0.50}),
                               trial("p1", "glue/cola", "pc_lora", {"mcc": 0.13})])
    curves = {"f1": [0.40, 0.50], "p1": [0.29, 0.05, 0.13]}  # p1: best 0.29, ends with 0.13 < 0.29 / 2
    for trial_id, metrics in curves.items():
        lines = [json.dumps({"epoch": i + 1, "time": MAY_1, "metric": m}) for i, m in enumerate(metrics)]
        (results / "s" / "trials" / trial_id / "epochs.jsonl").write_text("\n".join(lines) + "\n")
    leaderboard.build(results)
    text = (results / "leaderboards" / "glue.md").read_text()
    pc_row = next(line for line in text.splitlines() if line.startswith("| bert-base-uncased | pc_lora"))
    fft_row = next(line for line in text.splitlines() if line.startswith("| bert-base-uncased | fft"))
    assert "13.0 ‡" in pc_row and "‡" not in fft_row and "†" not in pc_row
    assert "‡ collapsed" in text
    assert "13.0 ‡" in (results / "leaderboards" / "index.html").read_text()


def test_the_html_page_loads_sorts_and_links_each_cell_in_chromium(results: Path, tmp_path: Path) -> None:
    """index.html: static, offline, no console error, sorted by the URL's #sort=, cells linked to trial files."""
    import re

    from tests.conftest import headless_chromium

    written = leaderboard.build(results)
    page = results / "leaderboards" / "index.html"
    assert page in written and (results / "leaderboards" / "glue-cola.svg") in written
    shot = tmp_path / "leaderboard.png"
    column = 2  # CoLA (MCC), after model and method
    dom, console = headless_chromium(f"{page.as_uri()}#sort=glue:{column}:desc", tmp_path, shot)
    assert console == []
    assert f'data-sorted="glue:{column}:desc"' in dom
    glue = dom.split('id="glue"')[1].split("</table>")[0]
    keys = [float(v) for v in re.findall(r'<tr><td class="text">[^<]*</td><td class="text">[^<]*</td><td data-sort="([-\d.e]+)"', glue)]
    assert len(keys) >= 3 and keys == sorted(keys, reverse=True)
    links = re.findall(r'href="([^"]+/metrics\.json)"', dom)
    assert links and all((page.parent / link).resolve().is_file() for link in links)
    assert shot.stat().st_size > 20_000
    print(f"screenshot: {shot}")


def test_a_cut_off_sweep_is_read_from_its_trial_folders_and_labelled_so(tmp_path: Path) -> None:
    results = tmp_path / "results"
    sweep = results / "gpu" / "cut"
    write_run(sweep / "trials" / "t1", "imdb", "fft", {"metric": 0.9, "metric_name": "accuracy", "accuracy": 0.9,
                                                       "params": BASE_PARAMS, "flops": BASE_FLOPS})
    (sweep / "trials" / "t2").mkdir(parents=True)  # started, never finished: no metrics.json
    (sweep / "sweep.yaml").write_text("name: cut\n\n# search space\n# grid: 4 points\n")
    (results / "leaderboards").mkdir()
    (results / "leaderboards" / "manifest.yaml").write_text("sweeps: [gpu/cut]\n")
    leaderboard.build(results)
    assert not (sweep / "trials.csv").exists()  # nothing fabricated
    text = (results / "leaderboards" / "imdb.md").read_text()
    assert "`gpu/cut` was cut off: 1 of 4 trials finished, no trials.csv" in text
    assert "| bert-base-uncased | fft | 90.0 |" in text and "(cut off: 1 of 4 trials finished)" in text
    # every planned trial finished, the driver stopped before trials.csv: said so, not "1 of 1 finished"
    (sweep / "sweep.yaml").write_text("name: cut\n\n# search space\n# grid: 1 points\n")
    leaderboard.build(results)
    text = (results / "leaderboards" / "imdb.md").read_text()
    assert "`gpu/cut` was cut off after all 1 trials finished, before writing trials.csv" in text


def _two_scales(results: Path) -> str:
    """A 110 M teacher with KD-LoRA to a small student and that student's FFT ceiling; a 10 M scale beside it."""
    big = {"model": "/m/big", "base_params": 110_000_000, "params": 110_000_000}
    write_sweep(results, "big", [trial("f", "glue/sst2", "fft", {"accuracy": 0.90}, **big),
                                 trial("k", "glue/sst2", "kd_lora", {"accuracy": 0.81}, **{
                                     **big, "params": 22_000_000, "method.student": "/m/small"})])
    write_sweep(results, "big-ceiling", [trial("c", "glue/sst2", "fft", {"accuracy": 0.84}, model="/m/small",
                                               base_params=22_000_000, params=22_000_000)])
    write_sweep(results, "tiny", [trial("f", "glue/sst2", "fft", {"accuracy": 0.80}, model="/m/tiny",
                                        base_params=10_000_000, params=10_000_000),
                                  trial("k", "glue/sst2", "kd_lora", {"accuracy": 0.70}, model="/m/tiny",
                                        base_params=10_000_000, params=5_000_000, **{"method.student": "/m/t2"})])
    leaderboard.build(results)
    return (results / "leaderboards" / "glue.md").read_text()


def test_a_kd_lora_cell_states_its_share_of_fft_and_of_its_students_ceiling(tmp_path: Path) -> None:
    text = _two_scales(tmp_path / "results")
    assert "| big | kd_lora | – | 81.0 (90.0 % FFT; 96.4 % ceiling) |" in text
    assert "| small (student ceiling) | fft | – | 84.0 |" in text  # the reference row, in the big scale
    assert "| tiny | kd_lora | – | 70.0 (87.5 % FFT; ceiling not measured) |" in text
    # compression.md: the ceiling's section says it is a reference, not a compression method with an "FFT" of its own
    compression = (tmp_path / "results" / "leaderboards" / "compression.md").read_text()
    ceiling = compression.split("## glue/sst2 — small (student ceiling)")[1].split("\n## ")[0]
    assert "its ceiling), a reference row, not a compression method; sizes as % of the teacher" in ceiling
    assert "References:" not in ceiling and "Base model:" not in ceiling
    assert "References: FFT 90.0" in compression.split("## glue/sst2 — big")[1].split("\n## ")[0]


def test_a_students_fft_that_is_also_a_scale_is_both_its_ceiling_and_that_scales_teacher(tmp_path: Path) -> None:
    """MiniLM-L6 is the paper scale's KD-LoRA student and a scale of its own (IMDb, same budget): its FFT trial is
    the big scale's ceiling row and the small scale's FFT teacher; it was moved out of the small scale, whose
    KD-LoRA cell then read 'FFT not measured'."""
    results = tmp_path / "results"
    small = {"model": "/m/small", "base_params": 22_000_000, "params": 22_000_000}
    write_sweep(results, "big", [trial("f", "glue/sst2", "fft", {"accuracy": 0.90}, model="/m/big",
                                       base_params=110_000_000, params=110_000_000),
                                 trial("k", "glue/sst2", "kd_lora", {"accuracy": 0.81}, model="/m/big",
                                       base_params=110_000_000, params=22_000_000, **{"method.student": "/m/small"})])
    write_sweep(results, "small", [trial("f", "glue/sst2", "fft", {"accuracy": 0.84}, **small),
                                   trial("k", "glue/sst2", "kd_lora", {"accuracy": 0.63}, **{
                                       **small, "params": 11_000_000, "method.student": "/m/s2"})])
    leaderboard.build(results)
    text = (results / "leaderboards" / "glue.md").read_text()
    assert "| big | kd_lora | – | 81.0 (90.0 % FFT; 96.4 % ceiling) |" in text
    assert "| small (student ceiling) | fft | – | 84.0 |" in text
    assert "| small | fft | – | 84.0 |" in text
    assert "| small | kd_lora | – | 63.0 (75.0 % FFT; ceiling not measured) |" in text


def test_no_share_is_given_of_a_ceiling_that_learned_nothing(tmp_path: Path) -> None:
    """MiniLM-L3 fully fine-tuned on MRPC scores below the majority class's 74.8: a KD-LoRA cell at 107 % of it
    would read as a student beating its ceiling."""
    results = tmp_path / "results"
    mrpc = lambda acc, f1: {"accuracy": acc, "f1": f1, "acc_and_f1": (acc + f1) / 2}  # noqa: E731
    write_sweep(results, "s", [trial("f", "glue/mrpc", "fft", mrpc(0.81, 0.87), model="/m/big"),
                               trial("k", "glue/mrpc", "kd_lora", mrpc(0.72, 0.81), model="/m/big",
                                     **{"method.student": "/m/small"}),
                               trial("c", "glue/mrpc", "fft", mrpc(0.67, 0.76), model="/m/small")])
    leaderboard.build(results)
    text = (results / "leaderboards" / "glue.md").read_text()
    assert "| big | kd_lora | – | – | 72.0 (91.1 % FFT; ceiling at or below the constant prediction) |" in text
    assert "| small (student ceiling) | fft | – | – | 67.0 † |" in text


def test_a_student_cut_from_its_teacher_states_its_share_of_fft_and_that_it_has_no_ceiling(tmp_path: Path) -> None:
    """KD-LoRA with `method.student_layers` (no checkpoint of its own to fine-tune alone): the cell still gives its
    share of the FFT teacher, and says why no ceiling (cifar.md's DINOv2 cell read '77.2' with neither)."""
    results = tmp_path / "results"
    write_sweep(results, "cut", [trial("f", "glue/sst2", "fft", {"accuracy": 0.80}, model="/m/tiny"),
                                 trial("k", "glue/sst2", "kd_lora", {"accuracy": 0.72}, model="/m/tiny",
                                       **{"method.student_layers": 2})])
    leaderboard.build(results)
    text = (results / "leaderboards" / "glue.md").read_text()
    assert "| tiny | kd_lora | – | 72.0 (90.0 % FFT; no ceiling: a student cut from the teacher) |" in text


def test_without_a_ceiling_row_a_kd_lora_cell_reads_the_ceiling_its_own_sweep_cached(tmp_path: Path) -> None:
    """A sweep whose KD-LoRA trials had their student's FFT cached (references.json, judges = the student) gives the
    cell its share of it; an FFT trial of the student in a listed sweep, on the cell's budget, still comes first."""
    results = tmp_path / "results"
    ceiling = {"name": "student's FFT ceiling (t2)", "metric_name": "accuracy", "metric": 0.75, "params": None,
               "params_no_embeddings": None, "flops": None, "train_seconds": 5.0, "source": "ceilings/x",
               "judges": "/elsewhere/m/t2"}
    teacher = {**ceiling, "name": "FFT teacher (tiny)", "metric": 0.80, "judges": None}
    write_sweep(results, "tiny", [trial("f", "glue/sst2", "fft", {"accuracy": 0.80}, model="/m/tiny"),
                                  trial("k", "glue/sst2", "kd_lora", {"accuracy": 0.70}, model="/m/tiny",
                                        **{"method.student": "/m/t2"})])
    (results / "tiny" / "references.json").write_text(json.dumps([teacher, ceiling]))
    leaderboard.build(results)
    text = (results / "leaderboards" / "glue.md").read_text()
    assert "| tiny | kd_lora | – | 70.0 (87.5 % FFT; 93.3 % cached ceiling) |" in text
    assert "`cached ceiling`" in text  # the page says what it is
    (results / "leaderboards").rename(tmp_path / "first")
    write_sweep(results, "tiny-ceiling", [trial("c", "glue/sst2", "fft", {"accuracy": 0.78}, model="/m/t2")])
    leaderboard.build(results)
    text = (results / "leaderboards" / "glue.md").read_text()
    assert "| tiny | kd_lora | – | 70.0 (87.5 % FFT; 89.7 % ceiling) |" in text


def test_the_tables_are_split_by_scale_largest_first(tmp_path: Path) -> None:
    text = _two_scales(tmp_path / "results")
    titles = [line for line in text.splitlines() if line.startswith("## ")]
    assert titles == ["## big, 110 M parameters (training examples: all; epochs: 3; max length: ?)",
                      "## tiny, 10 M parameters (training examples: all; epochs: 3; max length: ?)"]
    big, tiny = text.split(titles[1])
    assert "| tiny |" not in big and "| big |" not in tiny and "(student ceiling)" not in tiny


def test_a_ceilings_flops_are_read_against_its_own_tasks_base(tmp_path: Path) -> None:
    """FLOPs follow the input length: a ceiling on IMDb (256 tokens) is measured against the section's IMDb base,
    not a median over tasks that mixes in GLUE's 128-token base (a 27.0 % that should have read 13.2 %)."""
    results = tmp_path / "results"
    big = {"model": "/m/big", "base_params": 110_000_000, "params": 110_000_000}
    small = {"model": "/m/small", "base_params": 22_000_000, "params": 22_000_000, "flops": 6_000, "base_flops": 6_000}
    write_sweep(results, "big", [
        trial("f1", "imdb", "fft", {"accuracy": 0.94}, **big, flops=46_000, base_flops=46_000),
        trial("k1", "imdb", "kd_lora", {"accuracy": 0.90}, **{**big, "params": 22_000_000, "flops": 6_000,
                                                                "base_flops": 46_000, "method.student": "/m/small"}),
        trial("f2", "glue/sst2", "fft", {"accuracy": 0.94}, **big, flops=22_000, base_flops=22_000),
        trial("f3", "glue/sst2", "fft", {"accuracy": 0.93}, **big, flops=22_000, base_flops=22_000)])
    write_sweep(results, "big-ceiling", [trial("c", "imdb", "fft", {"accuracy": 0.91}, **small)])
    leaderboard.build(results)
    text = (results / "leaderboards" / "imdb.md").read_text()
    assert "| small (student ceiling) | fft | 91.0 | 20.0 | 13.0 |" in text
