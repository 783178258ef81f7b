"""Issue 31 (reliability, second round) and issue 32 items 3 and 9: the probe's cases that need no sweep.

Each failed before its fix: bad paths and objectives exit 2 with one line before Ray starts, messages blame
only what the user set, say a thing once and stay short, and every subcommand names itself in its usage.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.cli import MAX_LINE, bounded, run_main
from orchestrator.config import ConfigError, load_config
from tests.conftest import REPO

BASE = {"name": "r", "task": "glue/sst2", "model": "bert-base-uncased"}
QUICKSTART = REPO / "search_spaces" / "quickstart.yaml"


def cli(module: str, argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str]:
    """A command run in-process through run_main: (exit status, stderr)."""
    with pytest.raises(SystemExit) as info:
        run_main(importlib.import_module(module).main, argv)
    return int(info.value.code), capsys.readouterr().err


def ray_running() -> bool:
    return "ray" in sys.modules and sys.modules["ray"].is_initialized()


# ------------------------------------------------------------------ 31.6: paths given to train and --config


@pytest.mark.parametrize("out", ["/proc/orch-run", "/sys/orch-run", "FILE", "FILE/sub", "LOOP"])
def test_train_out_that_cannot_hold_a_run_exits_2_with_one_line_before_ray(
        tmp_path: Path, capsys: pytest.CaptureFixture, out: str) -> None:
    existing = tmp_path / "existing.txt"
    existing.write_text("keep me\n")
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    out = out.replace("FILE", str(existing)).replace("LOOP", str(loop))
    config = tmp_path / "cfg.yaml"
    config.write_text("name: r\ntask: glue/sst2\nmodel: bert-base-uncased\n")
    code, err = cli("orchestrator.train", ["--config", str(config), "--out", out], capsys)
    assert code == 2 and err.startswith("error: --out: ") and err.count("\n") == 1, err
    assert "Traceback" not in err and not ray_running()
    assert existing.read_text() == "keep me\n"
    if out.endswith("loop"):
        assert "symlink loop" in err


def test_config_pointing_at_a_folder_or_a_loop_says_so(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code, err = cli("orchestrator.sweep", ["--config", str(tmp_path), "--dry-run"], capsys)
    assert code == 2 and "is a folder, not a file" in err and "does not exist" not in err
    loop = tmp_path / "cfg.yaml"
    loop.symlink_to(loop)
    code, err = cli("orchestrator.sweep", ["--config", str(loop), "--dry-run"], capsys)
    assert code == 2 and "is a symlink loop" in err and "does not exist" not in err
    code, err = cli("orchestrator.sweep", ["--config", str(tmp_path / "none.yaml"), "--dry-run"], capsys)
    assert code == 2 and "does not exist" in err


def test_model_and_data_dir_symlink_loops_are_reported_as_loops(tmp_path: Path) -> None:
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    with pytest.raises(ConfigError) as info:
        load_config(None, [f"model={loop}", f"data_dir={loop}", f"results_dir={tmp_path / 'res'}"], base=BASE)
    problems = info.value.problems
    assert len(problems) == 2 and all("symlink loop" in p and "does not exist" not in p for p in problems)


# ------------------------------------------------------------------ 31.7: objectives


@pytest.mark.parametrize("objectives", ["[metric:max, metric:min]", "[metric:max, params:min, metric:max]"])
def test_an_objective_given_twice_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture, objectives: str) -> None:
    with pytest.raises(ConfigError, match=r"search\.objectives: 'metric' given more than once"):
        load_config(None, [f"search.objectives={objectives}", f"results_dir={tmp_path}"], base=BASE)


# ------------------------------------------------------------------ 31.8: messages


def test_an_out_of_range_value_blames_only_its_own_key() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, ["method.kd_weight=2"], base=BASE)
    assert info.value.problems == ["method.kd_weight: must lie in [0, 1], got 2.0"]
    # the combination check still speaks when both values are valid on their own
    with pytest.raises(ConfigError, match=r"method\.logit_kd_weight: must lie in \[0, 1 − method\.kd_weight\]"):
        load_config(None, ["method.kd_weight=0.8", "method.logit_kd_weight=0.5", "method.kd_teacher=finetuned"],
                    base=BASE)


def test_a_key_given_twice_is_reported_once_without_double_wrapping(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture) -> None:
    config = tmp_path / "cfg.yaml"
    config.write_text("name: x\nname: y\n")
    code, err = cli("orchestrator.sweep", ["--config", str(config), "--dry-run"], capsys)
    assert code == 2 and err.count("appears twice") == 1 and "not valid YAML" not in err
    assert "problem(s)" not in err and err.count("\n") == 1, err


def test_a_line_of_10000_tabs_is_cut_in_the_error(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                  shared_models: Path) -> None:
    sst2 = tmp_path / "data" / "glue" / "SST-2"
    sst2.mkdir(parents=True)
    (sst2 / "train.tsv").write_text("\t" * 10_000 + "\ngood\t1\n")  # the probe's header of tabs
    (sst2 / "dev.tsv").write_text("sentence\tlabel\ngood\t1\n")
    code, err = cli("orchestrator.sweep", ["--config", str(QUICKSTART), "--dry-run", "--set",
                                           f"data_dir={tmp_path / 'data'}"], capsys)
    assert code == 2 and "train.tsv:1" in err and "more characters cut" in err
    assert max(len(line) for line in err.splitlines()) < MAX_LINE + 100


def test_bounded_keeps_short_lines_and_cuts_long_ones() -> None:
    assert bounded("a\nb") == "a\nb"
    cut = bounded("x" * (MAX_LINE + 10) + "\nshort")
    assert cut.splitlines()[0].endswith("(10 more characters cut)") and cut.splitlines()[1] == "short"


# ------------------------------------------------------------------ 32.9: each subcommand names itself


@pytest.mark.parametrize(("command", "module"), [("sweep", "sweep"), ("train", "train"), ("report", "sweep_page"),
                                                 ("leaderboard", "leaderboard"), ("ui", "ui"), ("tasks", "tasks")])
def test_each_subcommand_prints_its_own_usage_line(command: str, module: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    via_entry = subprocess.run([sys.executable, "-m", "orchestrator", command, "--help"], cwd=REPO, env=env,
                               capture_output=True, text=True, timeout=120)
    assert via_entry.returncode == 0 and via_entry.stdout.startswith(f"usage: python -m orchestrator {command} ")
    own = subprocess.run([sys.executable, "-m", f"orchestrator.{module}", "--help"], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=120)
    assert own.returncode == 0 and own.stdout.startswith(f"usage: python -m orchestrator.{module} ")
