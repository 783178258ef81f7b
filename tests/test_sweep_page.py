"""`python -m orchestrator report SWEEP`: one sweep's static HTML page, from a sweep folder made by hand."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from orchestrator import sweep_page
from orchestrator.config.schema import dump_yaml
from orchestrator.spec.load import load_config
from tests.conftest import REPO, headless_chromium

BASE = {"params": 22_000_000, "base_params": 22_000_000, "params_no_embeddings": 10_000_000,
        "base_params_no_embeddings": 10_000_000, "flops": 1e9, "base_flops": 1e9}


def make_sweep(results: Path) -> Path:
    cfg = load_config(REPO / "search_spaces" / "quickstart.yaml",
                      [f"results_dir={results}", "name=page", "tracking.uri=http://alice:Secret99@mlflow.internal"])
    sweep_dir = results / "page"
    sweep_dir.mkdir(parents=True)
    (sweep_dir / "sweep.yaml").write_text(dump_yaml(cfg))
    rows = [  # a PC-LoRA trial on the front, a KD-LoRA one off it, one ASHA stopped after epoch 2 of 3
        {"trial_id": "t_00000", "method.name": "pc_lora", "method.rank": 8, "method.decay_schedule": "sine",
         "metric": 0.80, "status": "complete", "full_budget": True, **BASE, "params": 12_000_000,
         "params_no_embeddings": 500_000, "flops": 6e7, "train_seconds": 120.0},
        {"trial_id": "t_00001", "method.name": "kd_lora", "method.rank": 4, "method.student_layers": 3,
         "metric": 0.78, "status": "complete", "full_budget": True, **BASE, "params": 19_000_000,
         "params_no_embeddings": 5_000_000, "flops": 5e8, "train_seconds": 90.0},
        {"trial_id": "t_00002", "method.name": "pc_lora", "method.rank": 4, "method.decay_schedule": "linear",
         "metric": 0.55, "status": "stopped", "full_budget": False, **BASE, "params": 11_000_000,
         "params_no_embeddings": 300_000, "flops": 4e7, "train_seconds": 60.0},
    ]
    # `searched` as a sweep writes it: the KD-LoRA row's student_layers reads back as 3.0 (a column with blanks)
    pd.DataFrame([{**r, "metric_name": "accuracy", "task": "glue/sst2", "train.epochs": 3, "train.max_examples": 1000,
                   "train.max_length": 64, "searched": "method.name,method.rank,method.student_layers"}
                  for r in rows]).to_csv(sweep_dir / "trials.csv", index=False)
    for r, epochs in zip(rows, (3, 3, 2), strict=True):
        folder = sweep_dir / "trials" / r["trial_id"]
        folder.mkdir(parents=True)
        (folder / "metrics.json").write_text(json.dumps({"metric": r["metric"]}))
        (folder / "config.yaml").write_text("name: page\n")
        (folder / "epochs.jsonl").write_text("".join(
            json.dumps({"epoch": e, "metric": r["metric"] * e / epochs, "loss": 1 / e}) + "\n" for e in range(1, epochs + 1)))
    return sweep_dir


def test_the_report_holds_front_curves_trials_and_config(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    sweep_dir = make_sweep(tmp_path / "results")
    assert sweep_page.main(["page", "--results", str(tmp_path / "results")]) == 0
    out = sweep_dir / "report"
    assert "report: " in capsys.readouterr().out
    for name in ("front.svg", "front.png", "curves.svg", "curves.png"):
        assert (out / name).stat().st_size > 5_000, name
    text = (out / "index.html").read_text()
    order = re.findall(r'<tr><td class="text">(t_\d+)', text)
    assert order == ["t_00000", "t_00001", "t_00002"]  # best first
    assert "t_00000 ★" in text and "t_00002 ★" not in text  # the stopped trial is not on the front
    assert "54.5" in text and "5.0" in text  # params kept % (12 of 22 M) and encoder kept % (0.5 of 10 M)
    assert "3 trials: 2 complete, 1 stopped" in text and "training examples: 1000" in text
    assert "<td>2.0</td>" in text and "Train min: the trial's own training" in text  # train_seconds, named
    assert "Secret99" not in text and "decay_schedule" in text  # the config, redacted
    for link in re.findall(r'href="([^"]+/(?:metrics\.json|config\.yaml))"', text):
        assert (out / link).resolve().is_file(), link


def test_the_report_refuses_what_is_not_a_sweep(tmp_path: Path) -> None:
    from orchestrator.config.schema import ConfigError

    with pytest.raises(ConfigError, match=r"SWEEP: no sweep.yaml in 'nope'"):
        sweep_page.main(["nope", "--results", str(tmp_path)])
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "sweep.yaml").write_text("name: half\n")
    with pytest.raises(ConfigError, match=r"trials.csv: not written yet"):
        sweep_page.main(["half", "--results", str(tmp_path)])


def test_the_report_loads_and_sorts_in_chromium(tmp_path: Path) -> None:
    sweep_dir = make_sweep(tmp_path / "results")
    sweep_page.main([str(sweep_dir)])
    page = sweep_dir / "report" / "index.html"
    shot = tmp_path / "sweep-report.png"
    dom, console = headless_chromium(f"{page.as_uri()}#sort=trials:4:asc", tmp_path, shot, size="1300,1800")
    assert console == []
    assert 'data-sorted="trials:4:asc"' in dom  # params kept %, fewest first
    assert re.findall(r'<tr><td class="text">(t_\d+)', dom) == ["t_00002", "t_00000", "t_00001"]
    assert dom.count("<img") == 2 and shot.stat().st_size > 30_000
    print(f"screenshot: {shot}")


def add_teacher(sweep_dir: Path, metric: float = 0.85) -> Path:
    """The cached teacher the sweep's KD-LoRA trial (t_00001) used, where orchestrator/run.py keeps it."""
    from orchestrator.config.schema import with_values
    from orchestrator.engine.run import TEACHERS_DIR, teacher_key

    cfg = load_config(sweep_dir / "sweep.yaml", ["tracking.uri=null"])
    kd = {"method.name": "kd_lora", "method.rank": 4, "method.student_layers": 3}
    folder = sweep_dir.parent / TEACHERS_DIR / teacher_key(with_values(cfg, kd))
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps({"metric": metric, "metric_name": "accuracy", **BASE,
                                                     "train_seconds": 96.0}))
    return folder


def svg_group_points(svg: str, gid: str) -> int:
    """How many vertices the path in the SVG group `gid` has (0 when the group is absent)."""
    match = re.search(rf'<g id="{gid}">\s*<path d="([^"]*)"', svg)
    return 0 if match is None else len(re.findall(r"[ML]\s*-?[\d.]+", match.group(1)))


def test_the_teacher_is_the_reference_in_the_report_the_front_and_the_plot(tmp_path: Path) -> None:
    """Issue 32: a user can tell whether 0.80 is good: the FFT teacher's 0.85 is beside it everywhere."""
    from orchestrator.reports.references import teacher_references
    from orchestrator.reports.report import front_of, pareto_markdown

    sweep_dir = make_sweep(tmp_path / "results")
    add_teacher(sweep_dir)
    assert sweep_page.main([str(sweep_dir)]) == 0
    text = (sweep_dir / "report" / "index.html").read_text()
    assert "FFT teacher (minilm-l6-h384) accuracy 0.8500, params 100.0 % (enc 100.0 %), FLOPs 100.0 %" in text
    assert "the front&#x27;s best is 94.1 % of it" in text and "fine-tuned once in 1.6 min" in text
    svg = (sweep_dir / "report" / "front.svg").read_text()
    assert svg_group_points(svg, "reference-0-params") >= 2
    cfg = load_config(sweep_dir / "sweep.yaml", ["tracking.uri=null"])
    trials = pd.read_csv(sweep_dir / "trials.csv", dtype={"trial_id": str})
    refs = teacher_references(cfg, trials, sweep_dir.parent)
    md = pareto_markdown(cfg, front_of(cfg, trials), trials, refs)
    assert "| FFT teacher (minilm-l6-h384) | 0.85 | 100.0 | 100.0 | 100.0 | 94.1 |" in md


def test_without_a_teacher_the_report_says_so_instead_of_inventing_one(tmp_path: Path) -> None:
    sweep_dir = make_sweep(tmp_path / "results")
    trials = pd.read_csv(sweep_dir / "trials.csv", dtype={"trial_id": str})
    trials[trials["method.name"] == "pc_lora"].to_csv(sweep_dir / "trials.csv", index=False)
    assert sweep_page.main([str(sweep_dir)]) == 0
    text = (sweep_dir / "report" / "index.html").read_text()
    assert "no reference score: no trial of this sweep fine-tuned a teacher" in text
    assert "FFT teacher" not in text


def test_the_caption_is_true_to_the_figure(tmp_path: Path) -> None:
    """Issue 32: the caption says the front is dashed; a one-point front has its dashed staircase drawn."""
    sweep_dir = make_sweep(tmp_path / "results")
    sweep_page.main([str(sweep_dir)])
    text = (sweep_dir / "report" / "index.html").read_text()
    assert "joined by a dashed staircase" in text
    svg = (sweep_dir / "report" / "front.svg").read_text()
    assert svg_group_points(svg, "pareto-front-params") >= 2  # one front point, and the line on to the edge


def test_the_report_reads_the_references_the_sweep_recorded(tmp_path: Path) -> None:
    """sweep.yaml holds paths as the user wrote them and results may be copied elsewhere: the teacher's cache key
    cannot be found again from them, so the report reads the sweep's references.json."""
    from orchestrator.reports.references import Reference, write_record

    sweep_dir = make_sweep(tmp_path / "results")
    write_record(sweep_dir, [Reference(name="FFT teacher (minilm-l6-h384)", metric_name="accuracy", metric=0.9,
                                       params=22e6, params_no_embeddings=10e6, flops=1e9, train_seconds=60.0,
                                       source="/elsewhere/results/teachers/x")])
    assert sweep_page.main([str(sweep_dir)]) == 0  # no teacher folder under this results folder
    text = (sweep_dir / "report" / "index.html").read_text()
    assert "FFT teacher (minilm-l6-h384) accuracy 0.9000" in text and "88.9 % of it" in text
