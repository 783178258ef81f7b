"""The sweep folder's layout, written down once (orchestrator/base/sweep_folder.py): its paths, the sweep's writers and
the reports' readers agreeing through it, config.yaml and sweep.yaml written atomically."""

from __future__ import annotations

import json
import pathlib
from pathlib import Path

import pandas as pd
import pytest

from orchestrator.base.sweep_folder import SweepFolder
from orchestrator.config.records import TrialFiles
from orchestrator.spec.load import load_config
from tests.conftest import REPO
from tests.test_sweep_page import BASE

# ------------------------------------------------------------------ the layout


def test_every_path_of_the_layout(tmp_path: Path) -> None:
    """The names existing sweeps were written with: a rename would orphan every sweep folder on disk."""
    folder = SweepFolder.under(tmp_path / "results", "glue")
    root = tmp_path / "results" / "glue"
    assert folder.root == root and folder.name == "glue" and folder.results_dir == tmp_path / "results"
    expected = {"sweep_yaml": "sweep.yaml", "trials_csv": "trials.csv", "pareto_csv": "pareto.csv",
                "pareto_md": "pareto.md", "pareto_png": "pareto.png", "pareto_svg": "pareto.svg",
                "references": "references.json", "ablation_md": "ablation.md", "optuna_db": "optuna.db",
                "lock": ".sweep.lock", "tune_dir": "tune", "report_dir": "report", "trials_dir": "trials"}
    assert {key: getattr(folder, key) for key in expected} == {key: root / name for key, name in expected.items()}
    assert folder.trial("a1b2_00003") == root / "trials" / "a1b2_00003"
    assert folder.rung_dir("mo_asha") == root / "mo_asha"
    assert folder.mlflow_db == tmp_path / "results" / "mlflow.db"
    assert folder.outputs() == [root / "trials.csv", root / "pareto.csv", root / "pareto.md", root / "pareto.png"]
    assert SweepFolder(str(root)) == folder  # a string root is a Path


def test_trial_folders_and_the_glob_over_a_results_folder(tmp_path: Path) -> None:
    folder = SweepFolder.under(tmp_path, "s")
    assert list(folder.trial_dirs()) == [] and not folder.is_sweep()
    for trial_id in ("t_2", "t_1"):
        folder.trial(trial_id).mkdir(parents=True)
        (folder.trial(trial_id) / TrialFiles.METRICS).write_text("{}")
    (folder.trials_dir / "stray.txt").write_text("")
    assert list(folder.trial_dirs()) == [folder.trial("t_1"), folder.trial("t_2")]
    assert sorted(tmp_path.glob(SweepFolder.trial_pattern(TrialFiles.METRICS))) == [
        folder.trial("t_1") / TrialFiles.METRICS, folder.trial("t_2") / TrialFiles.METRICS]
    folder.sweep_yaml.write_text("name: s\n")
    assert folder.is_sweep()


# ------------------------------------------------------------------ writers and readers agree


def _trials(cfg) -> pd.DataFrame:
    """Rows as collect_rows writes them: every config key, then the trial's settings and metrics."""
    from orchestrator.config.schema import flat_scalars

    rows = [{"trial_id": "t_00000", "method.name": "pc_lora", "method.rank": 8, "metric": 0.80, "status": "complete",
             "full_budget": True, **BASE, "params": 12_000_000, "params_no_embeddings": 500_000, "flops": 6e7},
            {"trial_id": "t_00001", "method.name": "lora", "method.rank": 4, "metric": 0.70, "status": "complete",
             "full_budget": True, **BASE, "params": 21_000_000, "params_no_embeddings": 9_000_000, "flops": 9e8}]
    return pd.DataFrame([{**flat_scalars(cfg.to_dict()), **r, "metric_name": "accuracy", "task": "glue/sst2", "feasible": True, "train_seconds": 10.0,
                          "device": "cpu", "searched": "method.name,method.rank"} for r in rows])


RENAMED = {"sweep_yaml": "the-sweep.yaml", "trials_csv": "all-trials.csv", "pareto_md": "front.md",
           "references": "refs.json", "trials_dir": "runs"}


@pytest.mark.parametrize("renamed", [False, True], ids=["layout", "renamed"])
def test_a_sweep_folder_written_by_the_sweep_is_read_by_the_reports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   renamed: bool) -> None:
    """sweep.yaml and trials.csv, the front, the references and the trial folders by the sweep's own writers; then
    the report and the leaderboard find all of it through the same SweepFolder. Renamed: with other names in
    SweepFolder, writers and readers still agree, so none of them spells a name of its own."""
    if renamed:
        for key, name in RENAMED.items():
            monkeypatch.setattr(SweepFolder, key, property(lambda self, name=name: self.root / name))
    from orchestrator.reports.leaderboard_rows import sweep_rows
    from orchestrator.reports.references import recorded
    from orchestrator.reports.sweep_outputs import write_outputs
    from orchestrator.reports.sweep_page import sweep_folder, write_report
    from orchestrator.search.tune import write_sweep_yaml

    results = tmp_path / "results"
    cfg = load_config(REPO / "search_spaces" / "quickstart.yaml", [f"results_dir={results}", "name=agree"])
    folder = SweepFolder.under(cfg.results_dir, cfg.name)
    write_sweep_yaml(cfg, folder)
    trials = _trials(cfg)
    for trial_id in trials["trial_id"]:  # what a trial's run writes (orchestrator/engine/run.py, loop.py)
        folder.trial(trial_id).mkdir(parents=True)
        (folder.trial(trial_id) / TrialFiles.CONFIG).write_text("name: agree\n")
        (folder.trial(trial_id) / TrialFiles.METRICS).write_text(json.dumps({"metric": 0.8, "full_budget": True}))
    write_outputs(cfg, folder.root, trials)
    for path in (*folder.outputs(), folder.pareto_svg, folder.references):
        assert path.is_file(), path

    assert sweep_folder("agree", results) == folder.root
    page = write_report(folder.root, folder.report_dir, results)
    html = page.read_text()
    for trial_id in trials["trial_id"]:  # each trial linked to its folder's records
        trial = folder.trial(trial_id).relative_to(folder.root)
        assert f'href="../{trial}/{TrialFiles.METRICS}"' in html and f'href="../{trial}/{TrialFiles.CONFIG}"' in html
    if renamed:
        assert not (folder.root / "trials.csv").exists() and (folder.root / "all-trials.csv").is_file()
    assert recorded(cfg, trials, folder.root) == []  # references.json read back, not found again
    problems: list[str] = []
    rows = sweep_rows(folder.trials_csv, results, problems)
    assert problems == [] and sorted(r["trial_id"] for r in rows) == ["t_00000", "t_00001"]
    assert all(str(folder.sweep_yaml.relative_to(results)) in r["command"] for r in rows)


def test_a_second_start_sees_the_sweep_yaml_the_first_wrote(tmp_path: Path) -> None:
    from orchestrator.search.tune import fate_problem, write_sweep_yaml

    cfg = load_config(REPO / "search_spaces" / "quickstart.yaml", [f"results_dir={tmp_path}", "name=again"])
    folder = SweepFolder.under(cfg.results_dir, cfg.name)
    assert fate_problem(folder.root, resume=False) is None
    write_sweep_yaml(cfg, folder)
    assert "already holds a sweep" in fate_problem(folder.root, resume=False)


# ------------------------------------------------------------------ config.yaml and sweep.yaml: atomic


@pytest.fixture
def write_fails_halfway(monkeypatch: pytest.MonkeyPatch) -> None:
    """Path.write_text writes half of its text, then the disk is full."""
    real = pathlib.Path.write_text

    def half(self: Path, data: str, *args, **kwargs) -> int:
        real(self, data[: len(data) // 2], *args, **kwargs)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pathlib.Path, "write_text", half)


def test_sweep_yaml_is_written_whole(tmp_path: Path) -> None:
    from orchestrator.search.tune import write_sweep_yaml

    cfg = load_config(REPO / "search_spaces" / "quickstart.yaml", [f"results_dir={tmp_path}", "name=whole"])
    folder = SweepFolder.under(tmp_path, "whole")
    write_sweep_yaml(cfg, folder)
    text = folder.sweep_yaml.read_text()
    assert text.startswith("name: whole") and "\n# search space\n" in text
    assert load_config(folder.sweep_yaml, []).name == "whole"  # read back as a config


def test_a_failed_write_of_sweep_yaml_leaves_the_old_one(tmp_path: Path, write_fails_halfway: None) -> None:
    from orchestrator.search.tune import write_sweep_yaml

    cfg = load_config(REPO / "search_spaces" / "quickstart.yaml", [f"results_dir={tmp_path}", "name=old"])
    folder = SweepFolder.under(tmp_path, "old")
    folder.root.mkdir(parents=True)
    pathlib.Path.write_bytes(folder.sweep_yaml, b"name: old\n")
    with pytest.raises(OSError, match="No space"):
        write_sweep_yaml(cfg, folder)
    assert folder.sweep_yaml.read_bytes() == b"name: old\n"
    assert sorted(p.name for p in folder.root.iterdir()) == ["sweep.yaml"]  # no temporary file left


def test_a_failed_write_of_config_yaml_leaves_the_old_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         write_fails_halfway: None) -> None:
    """fit() writes the run's config.yaml first; a write cut short must not leave half a config beside the run."""
    from orchestrator.engine import run

    monkeypatch.setattr(run, "ensure_ray", lambda *a, **k: None)
    cfg = load_config(REPO / "search_spaces" / "quickstart.yaml", [f"results_dir={tmp_path}"])
    out = tmp_path / "run"
    out.mkdir()
    pathlib.Path.write_bytes(out / TrialFiles.CONFIG, b"name: before\n")
    with pytest.raises(OSError, match="No space"):
        run.fit(cfg, out)
    assert (out / TrialFiles.CONFIG).read_bytes() == b"name: before\n"
    assert sorted(p.name for p in out.iterdir()) == [TrialFiles.CONFIG]


def test_trial_ids_of_digits_alone_read_back_as_the_folder_names(tmp_path) -> None:
    """Tune's 8-character ids are hex: about one in forty is digits alone, which pandas would read as a number
    (CI saw '55251770' come back as 55251770), and a leading zero would be lost: no folder of that name."""
    import pandas as pd

    from orchestrator.base.sweep_folder import SweepFolder

    folder = SweepFolder(tmp_path / "s")
    folder.root.mkdir()
    pd.DataFrame({"trial_id": ["01234567", "55251770", "a1b2c3d4"], "metric": [0.1, 0.2, 0.3]}).to_csv(
        folder.trials_csv, index=False)
    ids = list(folder.read_trials()["trial_id"])
    assert ids == ["01234567", "55251770", "a1b2c3d4"]
    assert folder.trial(ids[0]).name == "01234567"
