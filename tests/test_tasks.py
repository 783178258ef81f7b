"""Tasks: task table, loaders (local TSV / Parquet, hub via a monkeypatched loader), subsets, metrics,
training datasets, model heads and the describe CLI."""

from __future__ import annotations

import io
import json
import math
import subprocess
import sys
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from orchestrator import tasks as T

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
MODELS = REPO.parent / "shared" / "models"
MINILM = MODELS / "minilm-l6-h384"
DINO = MODELS / "dinov2-small"


@pytest.fixture(autouse=True)
def _fresh_memo():
    T.clear_memo()
    yield
    T.clear_memo()


def needs(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"offline copy not found: {path} (see ../shared/data/README.md and ../shared/models/README.md)")
    return path


def write(root: Path, rel: str, text: str) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def png_bytes(color: tuple[int, int, int], size: int = 8) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (size, size), color).save(buf, format="PNG")
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------- table

def test_task_table_names_every_task_with_glue_metrics():
    expected = {
        "glue/cola": ("mcc", ("mcc",)), "glue/sst2": ("accuracy", ("accuracy",)),
        "glue/mrpc": ("acc_and_f1", ("accuracy", "f1")), "glue/qqp": ("acc_and_f1", ("accuracy", "f1")),
        "glue/stsb": ("pearson_spearman_mean", ("pearson", "spearman")),
        "glue/mnli": ("accuracy", ("accuracy",)), "glue/qnli": ("accuracy", ("accuracy",)),
        "glue/rte": ("accuracy", ("accuracy",)), "glue/wnli": ("accuracy", ("accuracy",)),
        "imdb": ("accuracy", ("accuracy",)), "cifar10": ("accuracy", ("accuracy",)),
        "cifar100": ("accuracy", ("accuracy",)),
    }
    assert set(T.TASKS) == set(expected)
    for name, (primary, metrics) in expected.items():
        task = T.get_task(name)
        assert (task.primary_metric, task.metric_names) == (primary, metrics), name
        assert set(task.metric_names) <= set(T.METRIC_NAMES)
        assert task.eval_split in task.splits and set(task.local_files) == set(task.splits)
        if task.is_regression:
            assert task.num_labels == 1 and task.label_names == ()
        else:
            assert task.num_labels == len(task.label_names) == len(set(task.label_names))
    assert T.get_task("glue/stsb").is_regression
    assert T.get_task("glue/mnli").eval_split == "validation_matched"
    assert "validation_mismatched" in T.get_task("glue/mnli").splits
    assert T.get_task("glue/mrpc").input_columns == ("sentence1", "sentence2")
    assert T.get_task("cifar100").num_labels == 100 and T.get_task("cifar10").num_labels == 10
    assert T.get_task("glue/sst2").local_dir == "glue/SST-2"


def test_get_task_unknown_names_key_and_choices():
    with pytest.raises(ValueError, match=r"task: unknown task 'glue/sst3'; choose one of .*glue/sst2"):
        T.get_task("glue/sst3")


def test_load_split_refuses_unknown_split(tmp_path):
    with pytest.raises(ValueError, match="unknown split 'dev'; choose one of train, validation, test"):
        T.load_split(T.get_task("glue/sst2"), "dev", tmp_path)


# ------------------------------------------------------------------------------------- real local data

@pytest.mark.data
@pytest.mark.parametrize(("name", "sizes"), [
    ("glue/sst2", {"train": 67_349, "validation": 872, "test": 1_821}),
    ("glue/cola", {"train": 8_551, "validation": 1_043, "test": 1_063}),
    ("glue/mrpc", {"train": 3_668, "validation": 408, "test": 1_725}),
    ("glue/stsb", {"train": 5_749, "validation": 1_500, "test": 1_379}),
    ("glue/qnli", {"validation": 5_463, "test": 5_463}),
    ("cifar10", {"train": 50_000, "test": 10_000}),
])
def test_real_local_copies_load_with_their_sizes(name, sizes):
    task = T.get_task(name)
    needs(DATA / task.local_dir)
    for split, size in sizes.items():
        ds = T.load_split(task, split, DATA)
        assert len(ds) == size, (name, split)
        assert ds.column_names == [*task.input_columns, "label"]
        labels = T._labels_of(ds, "label")
        if split.startswith("test") and task.kind == "text":
            assert (labels == -1).all()  # GLUE test splits are unlabelled
        elif task.is_regression:
            assert labels.min() >= 0.0 and labels.max() <= 5.0 and len(np.unique(labels)) > 50
        else:
            assert set(np.unique(labels)) == set(range(task.num_labels))
            assert ds.features["label"].names == list(task.label_names)


@pytest.mark.data
def test_real_rows_match_the_files(shared_data):
    sst2 = T.load_split(T.get_task("glue/sst2"), "validation", shared_data)
    assert sst2[0] == {"sentence": "it 's a charming and often affecting journey . ", "label": 1}
    cola = T.load_split(T.get_task("glue/cola"), "train", shared_data)  # no header: line 1 is a row
    assert cola[0]["sentence"].startswith("Our friends won't buy this analysis")
    mrpc = T.load_split(T.get_task("glue/mrpc"), "train", shared_data)  # BOM before "Quality"
    assert mrpc[0]["label"] == 1 and mrpc[0]["sentence1"].startswith("Amrozi accused his brother")
    stsb = T.load_split(T.get_task("glue/stsb"), "train", shared_data)
    assert stsb[1]["sentence2"] == "A man is playing a flute." and stsb[1]["label"] == pytest.approx(3.8)
    qnli = T.load_split(T.get_task("glue/qnli"), "validation", shared_data)
    assert qnli[0]["label"] == 0 and qnli[1]["label"] == 1  # entailment, not_entailment


def test_missing_split_file_names_the_file(shared_data):
    with pytest.raises(T.DataError, match=r"glue/QNLI/train\.tsv: split 'train' of glue/qnli not found"):
        T.load_split(T.get_task("glue/qnli"), "train", shared_data)


# ------------------------------------------------------------------------------- generic local loaders

MNLI_HEADER = ("index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\t"
               "sentence1_parse\tsentence2_parse\tsentence1\tsentence2\tlabel1\tgold_label\n")


def test_unseen_glue_layouts_load_the_same_way(tmp_path):
    write(tmp_path, "glue/RTE/train.tsv", "index\tsentence1\tsentence2\tlabel\n"
          "0\tA \"quoted\" premise.\tA hypothesis.\tentailment\n1\tP2\tH2\tnot_entailment\n")
    write(tmp_path, "glue/WNLI/dev.tsv", "index\tsentence1\tsentence2\tlabel\n0\tS1\tS2\t1\n1\tS3\tS4\t0\n\n")  # + a blank line
    write(tmp_path, "glue/QQP/train.tsv", "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n"
          "7\t1\t2\tWhy?\tHow?\t0\n8\t3\t4\tWhat?\tWhat is it?\t1\n")
    write(tmp_path, "glue/MNLI/dev_mismatched.tsv", MNLI_HEADER
          + "0\t1\t1n\tfiction\tx\tx\tx\tx\tThe cat sat.\tA cat sat.\tentailment\tentailment\n"
          + "1\t2\t2c\tfiction\tx\tx\tx\tx\tIt rains.\tIt is dry.\tcontradiction\tcontradiction\n")
    write(tmp_path, "glue/MNLI/test_matched.tsv", "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\t"
          "sentence2_binary_parse\tsentence1_parse\tsentence2_parse\tsentence1\tsentence2\n"
          "0\t1\t1\tgov\tx\tx\tx\tx\tP.\tH.\n")

    rte = T.load_split(T.get_task("glue/rte"), "train", tmp_path)
    assert rte.to_dict() == {"sentence1": ['A "quoted" premise.', "P2"], "sentence2": ["A hypothesis.", "H2"],
                             "label": [0, 1]}
    assert T.load_split(T.get_task("glue/wnli"), "validation", tmp_path)["label"][:] == [1, 0]
    qqp = T.load_split(T.get_task("glue/qqp"), "train", tmp_path)
    assert qqp.column_names == ["question1", "question2", "label"] and qqp["label"][:] == [0, 1]
    mnli = T.load_split(T.get_task("glue/mnli"), "validation_mismatched", tmp_path)
    assert mnli.to_dict() == {"premise": ["The cat sat.", "It rains."], "hypothesis": ["A cat sat.", "It is dry."],
                              "label": [0, 2]}
    assert T.load_split(T.get_task("glue/mnli"), "test_matched", tmp_path)["label"][:] == [-1]


def test_parquet_layouts_imdb_cifar100_and_hub_shards(tmp_path):
    (tmp_path / "imdb").mkdir()
    pq.write_table(pa.table({"text": ["great film", "dull", "fine"], "label": [1, 0, 1]}),
                   tmp_path / "imdb" / "train.parquet")
    imdb = T.load_split(T.get_task("imdb"), "train", tmp_path)
    assert imdb.to_dict() == {"text": ["great film", "dull", "fine"], "label": [1, 0, 1]}
    assert imdb.features["label"].names == ["neg", "pos"]

    (tmp_path / "cifar100").mkdir()
    img = pa.array([{"bytes": png_bytes((255, 0, 0)), "path": None}, {"bytes": png_bytes((0, 0, 255)), "path": None}])
    pq.write_table(pa.table({"img": img, "fine_label": [26, 99], "coarse_label": [3, 1]}),
                   tmp_path / "cifar100" / "test.parquet")
    c100 = T.load_split(T.get_task("cifar100"), "test", tmp_path)
    assert c100.column_names == ["img", "label"] and c100["label"][:] == [26, 99]
    assert c100[0]["img"].getpixel((0, 0)) == (255, 0, 0)  # an Image feature: decodes to PIL

    # The hub's own file naming (train-00000-of-00001.parquet, hub column names) in a GLUE folder.
    (tmp_path / "glue" / "SST-2").mkdir(parents=True)
    pq.write_table(pa.table({"sentence": ["a", "b"], "label": [0, 1], "idx": [0, 1]}),
                   tmp_path / "glue" / "SST-2" / "train-00000-of-00001.parquet")
    assert T.load_split(T.get_task("glue/sst2"), "train", tmp_path).to_dict() == {"sentence": ["a", "b"],
                                                                                 "label": [0, 1]}


# -------------------------------------------------------------------------------------------- bad data

def test_row_with_wrong_column_count_names_file_and_line(tmp_path):
    path = write(tmp_path, "glue/RTE/train.tsv", "index\tsentence1\tsentence2\tlabel\n"
                 "0\tP\tH\tentailment\n1\tP\tH with\ta tab\tentailment\n")
    with pytest.raises(T.DataError, match=rf"{path}:3: expected 4 tab-separated columns .* found 5"):
        T.load_split(T.get_task("glue/rte"), "train", tmp_path)


def test_headerless_cola_row_error_counts_line_one_as_data(tmp_path):
    path = write(tmp_path, "glue/CoLA/train.tsv", "gj04\t1\t\tGood sentence.\ngj04\t0\tBad row.\n")
    with pytest.raises(T.DataError, match=rf"{path}:2: expected 4 tab-separated columns"):
        T.load_split(T.get_task("glue/cola"), "train", tmp_path)


def test_label_outside_the_label_set_names_file_line_and_value(tmp_path):
    path = write(tmp_path, "glue/SST-2/dev.tsv", "sentence\tlabel\ngood\t1\nbad\t2\n")
    with pytest.raises(T.DataError, match=rf"{path}:3: label '2' .* expected one of negative, positive"):
        T.load_split(T.get_task("glue/sst2"), "validation", tmp_path)
    write(tmp_path, "glue/STS-B/train.tsv", "index\tsentence1\tsentence2\tscore\n0\ta\tb\thigh\n")
    with pytest.raises(T.DataError, match=r"STS-B/train.tsv:2: label 'high' .* expected a number"):
        T.load_split(T.get_task("glue/stsb"), "train", tmp_path)


def test_parquet_label_outside_the_set_names_file_and_row(tmp_path):
    (tmp_path / "imdb").mkdir()
    pq.write_table(pa.table({"text": ["a", "b", "c"], "label": [0, 1, 5]}), tmp_path / "imdb" / "test.parquet")
    with pytest.raises(T.DataError, match=r"imdb/test\.parquet: row 2: label 5 is outside the label set"):
        T.load_split(T.get_task("imdb"), "test", tmp_path)


def test_empty_split_missing_label_column_and_missing_folders(tmp_path):
    write(tmp_path, "glue/SST-2/train.tsv", "sentence\tlabel\n")
    with pytest.raises(T.DataError, match=r"SST-2/train\.tsv: no rows"):
        T.load_split(T.get_task("glue/sst2"), "train", tmp_path)
    write(tmp_path, "glue/SST-2/dev.tsv", "")
    with pytest.raises(T.DataError, match=r"SST-2/dev\.tsv: the file is empty"):
        T.load_split(T.get_task("glue/sst2"), "validation", tmp_path)
    write(tmp_path, "glue/QNLI/dev.tsv", "index\tquestion\tsentence\n0\tq\ts\n")
    with pytest.raises(T.DataError, match=r"QNLI/dev\.tsv:1: no label column 'label'"):
        T.load_split(T.get_task("glue/qnli"), "validation", tmp_path)
    write(tmp_path, "glue/MRPC/train.tsv", "id\ttext\tlabel\n")
    with pytest.raises(T.DataError, match=r"MRPC/train\.tsv:1: expected a header with the columns '#1 String'"):
        T.load_split(T.get_task("glue/mrpc"), "train", tmp_path)
    with pytest.raises(T.DataError, match=r"glue/RTE: no such folder for task 'glue/rte'"):
        T.load_split(T.get_task("glue/rte"), "train", tmp_path)
    with pytest.raises(T.DataError, match=r"data_dir: folder .*nowhere' does not exist"):
        T.load_split(T.get_task("glue/rte"), "train", tmp_path / "nowhere")


# -------------------------------------------------------------------------------------------- the hub

def test_hub_path_uses_the_hub_layout_through_one_function(monkeypatch):
    calls = []
    rows = {
        ("nyu-mll/glue", "mnli"): datasets.Dataset.from_dict(
            {"premise": ["p0", "p1"], "hypothesis": ["h0", "h1"], "label": [2, 0], "idx": [0, 1]},
            features=datasets.Features({"premise": datasets.Value("string"), "hypothesis": datasets.Value("string"),
                                        "label": datasets.ClassLabel(names=["entailment", "neutral", "contradiction"]),
                                        "idx": datasets.Value("int32")})),
        ("nyu-mll/glue", "stsb"): datasets.Dataset.from_dict(
            {"sentence1": ["a", "b"], "sentence2": ["c", "d"], "label": [-1.0, -1.0], "idx": [0, 1]}),
        ("uoft-cs/cifar100", None): datasets.Dataset.from_dict(
            {"img": [{"bytes": png_bytes((0, 255, 0)), "path": None}], "fine_label": [42], "coarse_label": [8]},
            features=datasets.Features({"img": datasets.Image(), "fine_label": datasets.Value("int64"),
                                        "coarse_label": datasets.Value("int64")})),
    }

    def fake_hub(hub_id, hub_config, split):
        calls.append((hub_id, hub_config, split))
        return rows[(hub_id, hub_config)]

    monkeypatch.setattr(T.loading, "_load_from_hub", fake_hub)
    mnli = T.load_split(T.get_task("glue/mnli"), "validation_mismatched", None)
    assert mnli.to_dict() == {"premise": ["p0", "p1"], "hypothesis": ["h0", "h1"], "label": [2, 0]}
    stsb = T.load_split(T.get_task("glue/stsb"), "test", None)
    assert stsb["label"][:] == [-1.0, -1.0] and stsb.features["label"].dtype == "float32"
    c100 = T.load_split(T.get_task("cifar100"), "train", None)
    assert c100["label"][:] == [42] and c100[0]["img"].getpixel((1, 1)) == (0, 255, 0)
    assert calls == [("nyu-mll/glue", "mnli", "validation_mismatched"), ("nyu-mll/glue", "stsb", "test"),
                     ("uoft-cs/cifar100", None, "train")]


def test_hub_failures_become_data_errors_with_the_fix(monkeypatch):
    def offline(hub_id, hub_config, split):
        raise ConnectionError("no route to huggingface.co")

    monkeypatch.setattr(T.loading, "_load_from_hub", offline)
    with pytest.raises(T.DataError, match=r"from the hub \(nyu-mll/glue, sst2\).*no route.*set data_dir"):
        T.load_split(T.get_task("glue/sst2"), "train", None)
    monkeypatch.setattr(T.loading, "_load_from_hub", lambda *a: datasets.Dataset.from_dict({"sentence": ["x"], "label": [7]}))
    with pytest.raises(T.DataError, match=r"nyu-mll/glue \(train\): row 0: label 7 is outside"):
        T.load_split(T.get_task("glue/sst2"), "train", None)


def test_build_dataset_from_the_hub(monkeypatch, shared_models):
    hub = datasets.Dataset.from_dict({"sentence": [f"sentence number {i}" for i in range(10)],
                                      "label": [i % 2 for i in range(10)], "idx": list(range(10))})
    monkeypatch.setattr(T.loading, "_load_from_hub", lambda hub_id, cfg, split: hub)
    ds, collate = T.build_dataset(T.get_task("glue/sst2"), "train", model_name_or_path=str(MINILM), data_dir=None,
                                  max_length=16, max_examples=4, seed=0, train=True)
    batch = collate([ds[i] for i in range(len(ds))])
    assert batch["idx"].tolist() == [0, 1, 2, 3] and sorted(batch["labels"].tolist()) == [0, 0, 1, 1]


# --------------------------------------------------------------------------------------------- subsets

def labelled(labels) -> datasets.Dataset:
    return datasets.Dataset.from_dict({"x": list(range(len(labels))), "label": list(labels)})


def test_stratified_subset_is_proportional_sorted_deterministic_and_seeded():
    ds = labelled([0] * 60 + [1] * 30 + [2] * 10)
    sub = T.stratified_subset(ds, 10, seed=0)
    assert np.bincount(sub["label"][:]).tolist() == [6, 3, 1]
    rows = sub["x"][:]
    assert rows == sorted(rows) and len(set(rows)) == 10
    assert T.stratified_subset(ds, 10, seed=0)["x"][:] == rows  # deterministic
    assert T.stratified_subset(ds, 10, seed=1)["x"][:] != rows  # seed-dependent
    # Largest remainders: 7 rows of 60/30/10 -> 4.2, 2.1, 0.7 -> 4, 2, 1.
    assert np.bincount(T.stratified_subset(ds, 7, seed=3)["label"][:]).tolist() == [4, 2, 1]
    assert T.stratified_subset(ds, None, seed=0) is ds and T.stratified_subset(ds, 500, seed=0) is ds
    with pytest.raises(ValueError, match="max_examples must be a positive integer"):
        T.stratified_subset(ds, 0, seed=0)


def test_stratified_subset_of_scores_spans_their_range():
    scores = np.linspace(0.0, 5.0, 200, dtype=np.float32)
    sub = T.stratified_subset(labelled(scores), 20, seed=0)
    picked = np.asarray(sub["label"][:])
    # Ten quantile bins, two rows each: every half-point band of the 0-5 range is represented.
    assert np.bincount(np.minimum((picked / 0.5).astype(int), 9)).tolist() == [2] * 10


@pytest.mark.data
def test_stratified_subset_of_real_sst2_keeps_the_class_balance(shared_data):
    ds = T.load_split(T.get_task("glue/sst2"), "train", shared_data)
    full = np.bincount(T._labels_of(ds, "label")) / len(ds)
    sub = T.stratified_subset(ds, 1000, seed=0)
    assert len(sub) == 1000
    assert np.abs(np.bincount(T._labels_of(sub, "label")) - 1000 * full).max() <= 1


# --------------------------------------------------------------------------------------------- metrics

def onehot(classes, n=2) -> np.ndarray:
    return np.eye(n)[np.asarray(classes)] * 3.0 - 1.0  # logits whose argmax is the class


def test_mcc_matches_the_formula():
    labels = [1, 1, 1, 0, 0, 0, 1, 0]
    preds = [1, 1, 0, 0, 0, 1, 1, 0]
    tp, tn, fp, fn = 3, 3, 1, 1
    mcc = (tp * tn - fp * fn) / math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))  # = 0.5
    out = T.compute_metrics(T.get_task("glue/cola"), onehot(preds), np.array(labels))
    assert out == {"mcc": pytest.approx(mcc)} and mcc == 0.5


def test_accuracy_f1_and_their_mean():
    labels = np.array([1, 1, 0, 1, 0])
    preds = [1, 0, 0, 1, 1]  # 3 right; TP 2, FP 1, FN 1
    out = T.compute_metrics(T.get_task("glue/mrpc"), onehot(preds), labels)
    f1 = 2 * 2 / (2 * 2 + 1 + 1)
    assert out == pytest.approx({"accuracy": 0.6, "f1": f1, "acc_and_f1": (0.6 + f1) / 2})
    # Class ids instead of logits; three classes for MNLI.
    mnli = T.compute_metrics(T.get_task("glue/mnli"), onehot([0, 1, 2, 2], 3), np.array([0, 1, 1, 2]))
    assert mnli == {"accuracy": 0.75}
    assert T.compute_metrics(T.get_task("glue/sst2"), np.array([1, 0, 1]), np.array([1, 1, 1])) == {
        "accuracy": pytest.approx(2 / 3)}


def test_pearson_spearman_and_their_mean():
    preds = np.array([[1.0], [2.0], [3.0], [10.0]])  # [N, 1], as a regression head gives
    labels = np.array([1.0, 3.0, 2.0, 4.0])
    # Pearson: dx = -3,-2,-1,6; dy = -1.5,.5,-.5,1.5 -> 13 / sqrt(50 * 5). Spearman: ranks 1,2,3,4 vs 1,3,2,4.
    pearson, spearman = 13 / math.sqrt(250), 1 - 6 * (0 + 1 + 1 + 0) / (4 * (16 - 1))
    out = T.compute_metrics(T.get_task("glue/stsb"), preds, labels)
    assert out == pytest.approx({"pearson": pearson, "spearman": spearman,
                                 "pearson_spearman_mean": (pearson + spearman) / 2})
    assert spearman == pytest.approx(0.8)
    constant = T.compute_metrics(T.get_task("glue/stsb"), np.ones(4), labels)
    assert constant == {"pearson": 0.0, "spearman": 0.0, "pearson_spearman_mean": 0.0}


def test_metrics_refuse_unlabelled_and_mismatched_inputs():
    with pytest.raises(ValueError, match="contain -1"):
        T.compute_metrics(T.get_task("glue/sst2"), onehot([0, 1]), np.array([-1, -1]))
    with pytest.raises(ValueError, match="same, non-zero length"):
        T.compute_metrics(T.get_task("glue/sst2"), onehot([0, 1]), np.array([0]))
    with pytest.raises(ValueError, match="regression task"):
        T.compute_metrics(T.get_task("glue/stsb"), np.zeros((3, 2)), np.zeros(3))


def test_glue_score_averages_primary_metrics_like_the_leaderboard():
    # BERT-large on the GLUE leaderboard: score 80.5 with MNLI-m 86.7 / MNLI-mm 85.9 counted as one task.
    scores = {"glue/cola": 60.5, "glue/sst2": 94.9, "glue/mrpc": (89.3 + 85.4) / 2, "glue/stsb": (87.6 + 86.5) / 2,
              "glue/qqp": (72.1 + 89.3) / 2, "mnli-m": 86.7, "mnli-mm": 85.9, "glue/qnli": 92.7, "rte": 70.1,
              "glue/wnli": 65.1}
    score = T.glue_score(scores, require_all=True)
    assert score == pytest.approx((60.5 + 94.9 + 87.35 + 87.05 + 80.7 + 86.3 + 92.7 + 70.1 + 65.1) / 9)
    assert round(score, 1) == 80.5
    assert T.glue_score({"glue/sst2": 0.9, "glue/mnli": 0.8}) == pytest.approx(0.85)
    with pytest.raises(ValueError, match="missing: cola, mrpc"):
        T.glue_score({"glue/sst2": 0.9}, require_all=True)
    with pytest.raises(ValueError, match="'imdb' is not a GLUE task"):
        T.glue_score({"imdb": 0.9})
    with pytest.raises(ValueError, match="both 'mnli-m' and 'mnli-mm'"):
        T.glue_score({"mnli-m": 0.9})


# ---------------------------------------------------------------------------------- training datasets

def test_build_dataset_text_indices_padding_and_disk_cache(shared_data, shared_models, tmp_path, monkeypatch):
    calls = []
    real_tokenize = T._tokenize
    monkeypatch.setattr(T.cache, "_tokenize", lambda *a, **k: calls.append(1) or real_tokenize(*a, **k))
    task = T.get_task("glue/sst2")
    args = dict(model_name_or_path=str(MINILM), data_dir=shared_data, max_length=16, max_examples=40, seed=0,
                train=True, cache_dir=tmp_path)
    ds, collate = T.build_dataset(task, "train", **args)
    assert len(ds) == 40 and len(calls) == 1
    assert [ds[i]["idx"] for i in range(len(ds))] == list(range(40))
    files = sorted(tmp_path.glob("glue-sst2-train-*.arrow"))
    assert len(files) == 1

    # The rows are stratified_subset's rows, tokenised as the tokenizer does, truncated to max_length.
    rows = T.stratified_subset(T.load_split(task, "train", shared_data), 40, seed=0)
    tok = T.load_processor(str(MINILM), task)
    assert ds[3]["input_ids"] == tok(rows[3]["sentence"], truncation=True, max_length=16)["input_ids"]
    assert ds.labels.tolist() == rows["label"][:]

    loader = torch.utils.data.DataLoader(ds, batch_size=16, shuffle=True, collate_fn=collate)
    seen = []
    for batch in loader:
        assert set(batch) == {"input_ids", "token_type_ids", "attention_mask", "labels", "idx"}
        lengths = batch["attention_mask"].sum(1)
        assert batch["input_ids"].shape[1] == lengths.max() <= 16  # padded to the longest row only
        assert (batch["input_ids"][batch["attention_mask"] == 0] == tok.pad_token_id).all()
        assert batch["labels"].dtype == torch.long
        seen += batch["idx"].tolist()
    assert sorted(seen) == list(range(40))

    T.clear_memo()  # as a new process would: only the disk cache is left
    again, _ = T.build_dataset(task, "train", **args)
    assert len(calls) == 1 and again.table.equals(ds.table)
    T.build_dataset(task, "train", **{**args, "max_length": 32})  # another key: tokenised again
    assert len(calls) == 2 and len(list(tmp_path.glob("*.arrow"))) == 2


def test_build_dataset_without_cache_dir_memoises_in_process(shared_data, shared_models, monkeypatch):
    calls = []
    real_tokenize = T._tokenize
    monkeypatch.setattr(T.cache, "_tokenize", lambda *a, **k: calls.append(1) or real_tokenize(*a, **k))
    args = dict(model_name_or_path=str(MINILM), data_dir=shared_data, max_length=32, max_examples=12, seed=1,
                train=False)
    first, _ = T.build_dataset(T.get_task("glue/stsb"), "validation", **args)
    second, collate = T.build_dataset(T.get_task("glue/stsb"), "validation", **args)
    assert len(calls) == 1 and second.table is first.table
    batch = collate([second[0], second[1]])
    assert batch["labels"].dtype == torch.float32
    assert (batch["token_type_ids"] == 1).any()  # sentence pairs: the second segment has type 1


def test_backend_tokenisation_equals_the_tokenizer_call(shared_models):
    task = T.get_task("glue/mrpc")
    tok = T.load_processor(str(MINILM), task)
    ds = datasets.Dataset.from_dict({"sentence1": ["A long first sentence that will be cut " * 5, "short"],
                                     "sentence2": ["and a second one", "pair " * 40], "label": [0, 1]})
    table = T._tokenize(task, ds, tok, 24)
    expected = tok(ds["sentence1"][:], ds["sentence2"][:], truncation=True, max_length=24)
    assert table.column("input_ids").to_pylist() == expected["input_ids"]
    assert table.column("token_type_ids").to_pylist() == expected["token_type_ids"]


@pytest.mark.data
def test_build_dataset_images_give_processor_sized_pixels(shared_models):
    needs(DATA / "cifar10" / "train.parquet")
    task = T.get_task("cifar10")
    ds, collate = T.build_dataset(task, "train", model_name_or_path=str(DINO), data_dir=DATA, max_length=None,
                                  max_examples=20, seed=0, train=True, augment=False)
    assert len(ds) == 20 and np.bincount(ds.labels).tolist() == [2] * 10
    # The subset owns its bytes: a view into the 50k-image file would be pickled whole, once per chunk.
    assert ds.table.get_total_buffer_size() < 1_000_000
    batch = collate([ds[i] for i in range(4)])
    assert batch["pixel_values"].shape == (4, 3, 224, 224)
    assert batch["labels"].dtype == torch.long and batch["idx"].tolist() == [0, 1, 2, 3]
    # Normalised with the processor's ImageNet mean/std: values leave [0, 1].
    assert batch["pixel_values"].min() < 0

    plain = [collate([ds[5]])["pixel_values"] for _ in range(2)]
    assert torch.equal(plain[0], plain[1])  # no augmentation: deterministic
    aug, _ = T.build_dataset(task, "train", model_name_or_path=str(DINO), data_dir=DATA, max_examples=20, seed=0,
                             train=True, augment=True)
    torch.manual_seed(0)
    views = {tuple(np.asarray(aug[5]["image"]).ravel()[:64]) for _ in range(6)}
    assert len(views) > 1
    evaluation, _ = T.build_dataset(task, "train", model_name_or_path=str(DINO), data_dir=DATA, max_examples=20,
                                    seed=0, train=False, augment=True)
    assert not evaluation.augment  # augmentation only when training


def test_crop_and_flip_is_a_padded_shifted_or_mirrored_window():
    arr = (np.arange(32 * 32).reshape(32, 32, 1) % 251 + 1).repeat(3, axis=2).astype(np.uint8)
    padded = np.pad(arr, ((4, 4), (4, 4), (0, 0)))
    windows = [w for y in range(9) for x in range(9) for w in (padded[y:y + 32, x:x + 32],
                                                                 padded[y:y + 32, x:x + 32][:, ::-1])]
    torch.manual_seed(1)
    outs = [T._crop_and_flip(arr) for _ in range(20)]
    for out in outs:
        assert out.shape == arr.shape and any(np.array_equal(out, w) for w in windows)
    assert len({o.tobytes() for o in outs}) > 5


# ------------------------------------------------------------------------------------- models, processors

def test_load_model_heads(shared_models):
    stsb = T.load_model(str(MINILM), T.get_task("glue/stsb"))
    assert stsb.config.num_labels == 1 and stsb.config.problem_type == "regression"
    assert stsb(**{"input_ids": torch.tensor([[101, 102]])}).logits.shape == (1, 1)
    mnli = T.load_model(str(MINILM), T.get_task("glue/mnli"))
    assert mnli.config.problem_type == "single_label_classification"
    assert mnli.config.id2label == {0: "entailment", 1: "neutral", 2: "contradiction"}
    assert mnli.config.label2id["contradiction"] == 2
    vit = T.load_model(str(DINO), T.get_task("cifar10"))
    assert type(vit).__name__ == "Dinov2ForImageClassification" and vit.config.num_labels == 10
    assert type(T.load_processor(str(DINO), T.get_task("cifar10"))).__name__.startswith("BitImageProcessor")


def test_load_model_errors_name_the_model_key(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match=r"model: local folder '/no/such/model' does not exist"):
        T.load_model("/no/such/model", T.get_task("glue/sst2"))
    with pytest.raises(ValueError, match=r"model: .* has no config\.json"):
        T.load_model(str(tmp_path), T.get_task("glue/sst2"))
    import transformers

    def offline(*args, **kwargs):
        raise OSError("We couldn't connect to 'https://huggingface.co'")

    monkeypatch.setattr(transformers.AutoModelForSequenceClassification, "from_pretrained", offline)
    with pytest.raises(ValueError, match=r"model: could not load the model of 'org/unknown-model'.*connect"):
        T.load_model("org/unknown-model", T.get_task("glue/sst2"))


# ------------------------------------------------------------------------------------------------- CLI

def test_describe_json_matches_the_schema(shared_data, capsys):
    assert T.main(["describe", "glue/mrpc", "--data-dir", str(shared_data), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info == {"task": "glue/mrpc", "splits": {"train": 3668, "validation": 408, "test": 1725},
                    "num_labels": 2, "label_names": ["not_equivalent", "equivalent"], "metric": "acc_and_f1"}


def test_describe_text_uses_orch_data_dir(shared_data, capsys, monkeypatch):
    monkeypatch.setenv("ORCH_DATA_DIR", str(shared_data))
    # The shared copy of QNLI has no train.tsv: described, and exit 2 because it cannot be trained on.
    assert T.main(["describe", "glue/qnli"]) == 2
    out, err = capsys.readouterr()
    assert "input columns:  question, sentence" in out and "5,463" in out
    assert "not found: train.tsv" in out and "0 entailment, 1 not_entailment" in out
    assert "error: glue/qnli: split(s) train not found (train.tsv); training needs them" in err


def test_describe_from_the_hub_with_a_monkeypatched_loader(monkeypatch, capsys):
    monkeypatch.delenv("ORCH_DATA_DIR", raising=False)
    sizes = {"train": 5, "validation": 3, "test": 2}
    monkeypatch.setattr(T.loading, "_load_from_hub", lambda hub_id, cfg, split: datasets.Dataset.from_dict(
        {"sentence1": ["a"] * sizes[split], "sentence2": ["b"] * sizes[split],
         "label": [-1.0 if split == "test" else 2.5] * sizes[split]}))
    assert T.main(["describe", "glue/stsb", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info == {"task": "glue/stsb", "splits": sizes, "num_labels": 1, "label_names": [],
                    "metric": "pearson_spearman_mean"}


def test_describe_errors_exit_2_without_traceback(tmp_path, capsys):
    assert T.main(["describe", "glue/sst3", "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "unknown task 'glue/sst3'" in err and "Traceback" not in err
    assert T.main(["describe", "glue/rte", "--data-dir", str(tmp_path)]) == 2
    assert "glue/RTE: no such folder" in capsys.readouterr().err
    write(tmp_path, "glue/SST-2/train.tsv", "sentence\tlabel\nok\t1\nbad\n")
    assert T.main(["describe", "glue/sst2", "--data-dir", str(tmp_path)]) == 2
    assert "train.tsv:3: expected 2 tab-separated columns" in capsys.readouterr().err


def test_cli_help_and_module_entry_point(shared_data):
    with pytest.raises(SystemExit) as exit_info:
        T.main(["describe", "--help"])
    assert exit_info.value.code == 0
    proc = subprocess.run([sys.executable, "-m", "orchestrator.tasks", "describe", "glue/cola", "--json",
                           "--data-dir", str(shared_data)], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["splits"] == {"train": 8551, "validation": 1043, "test": 1063}
    proc = subprocess.run([sys.executable, "-m", "orchestrator.tasks", "describe", "nope"], capture_output=True,
                          text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 2 and "unknown task 'nope'" in proc.stderr and "Traceback" not in proc.stderr


def test_a_model_folder_without_tokenizer_files_is_refused(tmp_path, shared_models) -> None:
    """A folder with only config.json used to give a 5-token tokenizer: every word [UNK]."""
    import shutil

    from orchestrator.tasks import get_task, load_processor

    shutil.copy(shared_models / "minilm-l6-h384" / "config.json", tmp_path / "config.json")
    with pytest.raises(ValueError, match="no usable tokenizer"):
        load_processor(str(tmp_path), get_task("glue/sst2"))
    assert len(load_processor(str(shared_models / "minilm-l6-h384"), get_task("glue/sst2"))) > 30000


@pytest.mark.parametrize("name", ["glue/cola", "glue/sst2", "glue/mrpc", "glue/stsb", "glue/qnli", "imdb", "cifar10"])
def test_chance_scores_are_the_best_constant_prediction_on_the_local_split(name: str, shared_data: Path) -> None:
    """The reports mark cells at or below these; they must be what a constant predictor really scores."""
    import numpy as np

    task = T.get_task(name)
    if not (shared_data / task.local_dir).is_dir():
        pytest.skip(f"no local copy of {name}")
    labels = np.asarray(T.load_split(task, task.eval_split, shared_data)["label"])
    if task.is_regression:
        best = T.compute_metrics(task, np.full((len(labels), 1), labels.mean()), labels)[task.primary_metric]
    else:
        best = max(T.compute_metrics(task, np.eye(task.num_labels)[np.full(len(labels), c)], labels)[task.primary_metric]
                   for c in range(task.num_labels))
    assert T.CHANCE_SCORES[name] == pytest.approx(best, abs=1e-4)
    assert T.at_chance(name, best) and not T.at_chance(name, best + 0.01)


def test_a_run_collapsed_when_it_kept_under_half_of_its_best_gain_over_a_constant_prediction() -> None:
    # CoLA (constant: MCC 0): paper scale's PC-LoRA reached 0.29 at its best epoch and ended at 0.129.
    assert T.collapsed("glue/cola", 0.129, 0.29)
    assert not T.collapsed("glue/cola", 0.15, 0.29)  # kept 0.15 of a 0.29 gain: more than half
    # MRPC (constant 0.748): 0.797 kept 0.049 of a 0.106 gain (best 0.854): under half.
    assert T.collapsed("glue/mrpc", 0.797, 0.854) and not T.collapsed("glue/mrpc", 0.81, 0.854)
    # A best epoch within 0.02 of the constant prediction is noise, not something learned and lost.
    assert not T.collapsed("glue/mrpc", 0.749, 0.765)
    # No constant-prediction score for the task, no curve, or no final metric: never marked.
    assert not T.collapsed("glue/rte", 0.5, 0.7)
    assert not T.collapsed("glue/cola", 0.1, None) and not T.collapsed("glue/cola", None, 0.3)


@pytest.mark.data
def test_gpu_pixel_path_matches_the_image_processor(shared_models):
    """The collator's torch resize/crop/normalise (run on the GPU in training) against the PIL processor."""
    from PIL import Image

    from orchestrator.tasks.data import DevicePixels, ImageCollator

    processor = T.load_processor(str(DINO), T.get_task("cifar10"))
    rng = np.random.default_rng(0)
    items = [{"image": Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)), "labels": i % 3, "idx": i}
             for i in range(6)]
    want = ImageCollator(processor)(items)["pixel_values"]
    fast = ImageCollator(processor, "cpu")
    assert isinstance(fast.on_device, DevicePixels)
    got = fast(items)["pixel_values"]
    assert got.shape == want.shape == (6, 3, 224, 224)
    # PIL rounds to 8 bits after resizing; one level is 1/255/0.225 ≈ 0.017 after normalisation.
    assert (got - want).abs().mean() < 0.02 and (got - want).abs().max() < 0.5
    # Mixed sizes fall back to the processor, image by image.
    items[0]["image"] = Image.fromarray(rng.integers(0, 256, (40, 32, 3), dtype=np.uint8))
    assert fast(items)["pixel_values"].shape == (6, 3, 224, 224)


def test_tasks_list_names_every_task_without_reading_data(capsys) -> None:
    assert T.main(["list"]) == 0
    text = capsys.readouterr().out
    for name, task in T.TASKS.items():
        assert any(line.split()[:2] == [name, task.kind] and task.primary_metric in line for line in text.splitlines())
    assert T.main(["list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["task"] for r in rows] == list(T.TASKS) and rows[0]["local_dir"] == T.TASKS[rows[0]["task"]].local_dir


def test_length_grouped_batches_cover_every_example_with_little_padding(shared_data, shared_models):
    """train.group_by_length: each epoch is still a permutation of the data (ranks together, padded as
    DistributedSampler pads), seeded and different per epoch, and a batch pads far less than a shuffled one."""
    from orchestrator.tasks.data import LengthGroupedSampler

    ds, _ = T.build_dataset(T.get_task("glue/sst2"), "train", model_name_or_path=str(MINILM), data_dir=shared_data,
                            max_length=64, max_examples=1000, seed=0, train=True)
    lengths = ds.lengths
    assert lengths.tolist() == [len(ds[i]["input_ids"]) for i in range(len(ds))]

    def padded_tokens(order: list[int], batch: int) -> int:
        return sum(max(lengths[order[i:i + batch]]) * len(order[i:i + batch]) for i in range(0, len(order), batch))

    ranks = [LengthGroupedSampler(lengths, 32, num_replicas=2, rank=r, seed=0) for r in range(2)]
    shares = [list(s) for s in ranks]
    assert len(shares[0]) == len(shares[1]) == len(ranks[0]) == 500
    assert sorted(shares[0] + shares[1]) == list(range(1000))
    one = LengthGroupedSampler(lengths, 32, seed=0)
    first = list(one)
    assert first == list(LengthGroupedSampler(lengths, 32, seed=0))  # seeded
    one.set_epoch(1)
    assert list(one) != first and sorted(one) == list(range(1000))
    shuffled = torch.randperm(1000, generator=torch.Generator().manual_seed(0)).tolist()
    assert padded_tokens(first, 32) < 0.6 * padded_tokens(shuffled, 32)
    # the local batches of a rank (16 of a global 32) are its half of one global batch
    merged = [i for k in range(0, 500, 16) for i in shares[0][k:k + 16] + shares[1][k:k + 16]]
    assert padded_tokens(merged, 32) < 0.6 * padded_tokens(shuffled, 32)


def test_evaluation_longest_first_changes_no_prediction(shared_data, shared_models):
    """measure.evaluate batches by length (less padding); the predictions come back in example order and
    equal those of batches in example order."""
    from transformers import BertConfig, BertForSequenceClassification

    from orchestrator.engine.measure import evaluate, longest_first

    ds, collate = T.build_dataset(T.get_task("glue/sst2"), "validation", model_name_or_path=str(MINILM),
                                  data_dir=shared_data, max_length=64, max_examples=64, seed=0, train=False)
    order = longest_first(ds, list(range(len(ds))))
    assert sorted(order) == list(range(len(ds))) and list(ds.lengths[order]) == sorted(ds.lengths, reverse=True)
    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2,
                                                     num_attention_heads=2, intermediate_size=64)).eval()
    preds, labels = evaluate(model, ds, collate, 16, torch.device("cpu"), rank=0, world=1, amp=False)
    model.eval()  # evaluate hands the model back in training mode (the loop's)
    with torch.no_grad():
        expected = torch.cat([model(**{k: v for k, v in collate([ds[i] for i in range(s, s + 16)]).items()
                                       if k not in ("idx", "labels")}).logits for s in range(0, len(ds), 16)])
    assert np.allclose(preds, expected.numpy(), atol=1e-5) and (labels == ds.labels).all()
