"""The config: typed loading, --set overrides, and validation that names every bad key at once."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from orchestrator.config.schema import Config, ConfigError, parse_override, scalar_keys, with_values
from orchestrator.spec.load import load_config
from orchestrator.spec.space import grid_points, sample_point
from tests.conftest import DATA, MODELS, REPO

SEARCH_SPACES = sorted((REPO / "search_spaces").glob("*.yaml"))


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cfg.yaml"
    path.write_text(textwrap.dedent(text))
    return path


GOOD = f"""
name: ok
task: glue/sst2
model: {MODELS / 'minilm-l6-h384'}
data_dir: {DATA}
"""


@pytest.fixture
def good(tmp_path: Path, shared_models, shared_data) -> Path:
    return write(tmp_path, GOOD)


def problems_of(path: Path, overrides: list[str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path, overrides)
    return info.value.problems


def test_defaults_and_types(good: Path) -> None:
    cfg = load_config(good)
    assert isinstance(cfg, Config)
    assert cfg.method.name == "pc_lora" and cfg.train.max_examples is None
    assert Path(cfg.model).is_absolute() and Path(cfg.results_dir).is_absolute()


def test_set_overrides_are_typed_like_their_field(good: Path) -> None:
    cfg = load_config(good, ["method.rank=16", "method.kd_weight=1", "train.max_examples=200",
                             "method.name=kd_lora", "train.augment=true"])
    assert cfg.method.rank == 16 and isinstance(cfg.method.rank, int)
    assert cfg.method.kd_weight == 1.0 and isinstance(cfg.method.kd_weight, float)
    assert cfg.train.max_examples == 200 and cfg.method.name == "kd_lora" and cfg.train.augment is True


def test_exponent_without_a_dot_is_a_number(good: Path, tmp_path: Path) -> None:
    """YAML 1.1 reads 5e-5 as a string; a float field takes it as the number users mean."""
    cfg = load_config(good, ["train.lr=5e-5", "method.teacher_lr=2E-5"])
    assert cfg.train.lr == 5e-5 and cfg.method.teacher_lr == 2e-5
    assert problems_of(good, ["train.lr=5e-x"])[0].startswith("train.lr:")
    assert problems_of(good, ["train.epochs=1e3"])[0].startswith("train.epochs:")  # ints stay ints


def test_set_values_are_yaml_scalars_never_code() -> None:
    assert parse_override("method.teacher=__import__('os').system('x')") == (
        "method.teacher", "__import__('os').system('x')")
    with pytest.raises(ConfigError, match="dotted.key=value"):
        parse_override("method.rank")


# (yaml body or None, overrides, the key each message must name)
BAD_CASES = {
    "unknown top key": ("rnak: 4", [], "rnak"),
    "unknown nested key": ("method: {rnak: 4}", [], "method.rnak"),
    "unknown key in --set": ("", ["train.epoch=3"], "train.epoch"),
    "wrong type": ("method: {rank: eight}", [], "method.rank"),
    "wrong type in --set": ("", ["train.epochs=1.5"], "train.epochs"),
    "rank below 1": ("method: {rank: 0}", [], "method.rank"),
    "kd weight above 1": ("method: {kd_weight: 1.5}", [], "method.kd_weight"),
    "decay_end zero": ("method: {decay_end: 0}", [], "method.decay_end"),
    "unknown method": ("method: {name: qlora}", [], "method.name"),
    "unknown schedule": ("method: {decay_schedule: exp}", [], "method.decay_schedule"),
    "unknown task": ("task: glue/sst3", [], "task"),
    "missing model folder": ("model: ./no/such/model", [], "model"),
    "missing data folder": ("data_dir: /no/such/data", [], "data_dir"),
    "reversed range": ("space: {train.lr: {loguniform: [1.0e-3, 1.0e-5]}}", [], "space.train.lr"),
    "empty choice": ("space: {method.rank: {choice: []}}", [], "space.method.rank"),
    "bad candidate": ("space: {method.rank: {choice: [8, 0]}}", [], "space.method.rank"),
    "unknown space key": ("space: {method.rnk: {choice: [8]}}", [], "space.method.rnk"),
    "bad objective": ("search: {objectives: ['params:up']}", [], "search.objectives"),
    "unsafe name": ("name: ../escape", [], "name"),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_config_names_the_key(tmp_path: Path, shared_models, shared_data, case: str) -> None:
    body, overrides, key = BAD_CASES[case]
    raw = yaml.safe_load(GOOD)
    raw.update(yaml.safe_load(body) or {})
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(raw))
    problems = problems_of(path, overrides)
    assert any(re.match(rf"^(--set )?{re.escape(key)}[:.]", p) for p in problems), problems


def test_every_problem_is_reported_at_once(tmp_path: Path, shared_models, shared_data) -> None:
    path = write(tmp_path, GOOD + "method: {rank: 0, kd_weight: 2, decay_schedule: exp}\ntrain: {epochs: 0}\n")
    keys = {p.split(":")[0] for p in problems_of(path)}
    assert {"method.rank", "method.kd_weight", "method.decay_schedule", "train.epochs"} <= keys


def test_cli_refuses_bad_configs_with_exit_2_without_ray_or_files(tmp_path: Path, shared_models,
                                                                  shared_data) -> None:
    """A dozen bad configs through the real CLI: exit 2, the key named, Ray never imported, nothing written."""
    paths = []
    for i, (body, overrides, key) in enumerate(BAD_CASES.values()):
        raw = yaml.safe_load(GOOD)
        raw.update(yaml.safe_load(body) or {})
        raw["results_dir"] = str(tmp_path / "results")
        path = tmp_path / f"bad{i}.yaml"
        path.write_text(yaml.safe_dump(raw))
        paths.append((str(path), overrides, key))
    script = textwrap.dedent(f"""
        import sys
        from orchestrator import sweep
        for path, overrides, key in {paths!r}:
            argv = ["--config", path] + [a for o in overrides for a in ("--set", o)]
            try:
                sweep.run_main(sweep.main, argv)
            except SystemExit as exc:
                print(exc.code, "ray" in sys.modules, key, sep="|")
    """)
    out = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True,
                         timeout=300)
    lines = [line.split("|") for line in out.stdout.splitlines()]
    assert len(lines) == len(BAD_CASES), out.stderr[-2000:]
    for code, ray_imported, _ in lines:
        assert code == "2" and ray_imported == "False"
    for _, _, key in paths:
        assert re.search(rf"(- |error: )(--set )?{re.escape(key)}[:.]", out.stderr), key
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(Path(p).name for p, _, _ in paths)


def _fetched_model_stand_in(path: Path, tmp_path: Path) -> list[str]:
    """A config whose model is a folder `models fetch` makes (outside the checkout; tests never download)
    is checked against a tiny model of the same architecture at that place, every other key as written."""
    from orchestrator.models_fetch import MODELS as FETCHABLE
    from tests.tiny_text import tiny_mpnet_dir

    model = yaml.safe_load(path.read_text()).get("model") or ""
    if Path(model).name not in FETCHABLE or (REPO / model).exists():
        return []
    assert "mpnet" in Path(model).name, "add a tiny stand-in for this fetchable model"
    return [f"model={tiny_mpnet_dir(tmp_path / Path(model).name)}"]


@pytest.mark.parametrize("path", SEARCH_SPACES, ids=[p.stem for p in SEARCH_SPACES])
def test_every_search_space_file_is_valid(path: Path, shared_models, shared_data, monkeypatch, tmp_path) -> None:
    monkeypatch.chdir(REPO)
    cfg = load_config(path, _fetched_model_stand_in(path, tmp_path))
    assert cfg.name == path.stem or cfg.name


def test_dry_run_prints_config_and_space_without_ray(shared_models, shared_data) -> None:
    out = subprocess.run(
        [sys.executable, "-c",
         "import sys; from orchestrator import sweep; code = sweep.main(['--config', "
         "'search_spaces/quickstart.yaml', '--dry-run']); print('RAY', 'ray' in sys.modules); sys.exit(code)"],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "# resolved config" in out.stdout and "method.rank: choice [4, 8, 16, 32]" in out.stdout
    assert "(only for pc_lora)" in out.stdout and "RAY False" in out.stdout


def test_scalar_keys_cover_the_design_contract() -> None:
    design_keys = {"method.name", "method.rank", "method.decay_schedule", "method.decay_end",
                   "method.kd_weight", "method.temperature", "method.teacher", "method.student",
                   "method.student_layers", "train.epochs", "train.max_examples", "train.seed",
                   "eval.max_examples", "resources.workers", "data_dir", "model", "task",
                   "search.num_samples", "tracking.uri"}
    assert design_keys <= set(scalar_keys())


class FakeTrial:
    """Records what a define-by-run space asks for and answers with the first option."""

    def __init__(self, method: str) -> None:
        self.method, self.asked = method, []

    def suggest_categorical(self, name, choices):
        self.asked.append(name)
        return self.method if name == "method.name" else choices[0]

    def suggest_int(self, name, low, high):
        self.asked.append(name)
        return low

    def suggest_float(self, name, low, high, log=False):
        self.asked.append(name)
        return low


def test_conditional_dimensions_are_drawn_only_for_their_method() -> None:
    cfg = with_values(Config(), {})
    cfg.space = {"method.rank": {"choice": [4, 8]}, "method.decay_schedule": {"choice": ["sine", "linear"]},
                 "method.student_layers": {"choice": [2, 3]}, "method.name": {"choice": ["pc_lora", "kd_lora"]},
                 "train.lr": {"loguniform": [1e-4, 1e-3]}}
    pc = FakeTrial("pc_lora")
    point = sample_point(pc, cfg)
    assert pc.asked[0] == "method.name" and "method.student_layers" not in point
    assert point["method.decay_schedule"] == "sine"
    kd = FakeTrial("kd_lora")
    point = sample_point(kd, cfg)
    assert "method.decay_schedule" not in point and point["method.student_layers"] == 2


def test_grid_prunes_inapplicable_keys_and_repeats_seeds() -> None:
    cfg = Config()
    cfg.space = {"method.name": {"grid": ["pc_lora", "kd_lora"]},
                 "method.decay_schedule": {"grid": ["sine", "cosine", "linear"]},
                 "method.kd_weight": {"grid": [0.0, 0.5]}}
    cfg.search.seeds = [0, 1]
    points = grid_points(cfg)
    # pc_lora: 3 schedules x 2 kd weights; kd_lora: 2 kd weights (schedule pruned, not repeated)
    assert len(points) == (6 + 2) * 2
    assert all("method.decay_schedule" not in p for p in points if p["method.name"] == "kd_lora")
    assert {p["train.seed"] for p in points} == {0, 1}


def test_a_student_path_is_checked_only_where_a_method_reads_it(tmp_path: Path) -> None:
    """PC-LoRA ignores method.student: a missing student folder is no problem for it, and is for KD-LoRA."""
    missing, base = str(tmp_path / "no-such-student"), {"name": "t", "task": "glue/stsb", "model": "bert-base-uncased"}
    cfg = load_config(None, ["method.name=pc_lora", f"method.student={missing}"], base=base)
    assert cfg.method.student == missing
    with pytest.raises(ConfigError) as info:
        load_config(None, ["method.name=pc_lora", f"method.student={missing}",
                           'space.method.name={"choice": ["pc_lora", "kd_lora"]}'], base=base)
    assert any(p.startswith("method.student: model folder") for p in info.value.problems)
