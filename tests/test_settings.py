"""Each method's settings (orchestrator/config/settings/): the recipe's keys are its settings' fields, shared
settings are defined once, each method checks its own keys, and the flat `method:` section is composed from them."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from orchestrator import recipes
from orchestrator.base.choices import unknown_choice
from orchestrator.config import settings
from orchestrator.config.schema import ConfigError, MethodConfig, config_from_dict
from orchestrator.config.settings import (
    AdapterSettings,
    KDLoRASettings,
    MethodSettings,
    PCLoRASettings,
    TeacherSettings,
)
from orchestrator.spec.load import load_config
from tests.conftest import REPO

BASE = {"name": "t", "task": "glue/stsb", "model": "bert-base-uncased"}


def test_the_choose_one_of_message() -> None:
    assert (unknown_choice("method.name", "method", "pc-lora", ("fft", "lora", "pc_lora"))
            == "method.name: unknown method 'pc-lora'; choose one of fft, lora, pc_lora")
    assert unknown_choice(None, "kind", 3, ["grid", "choice"]) == "unknown kind 3; choose one of grid, choice"
    # CMA-ES: Optuna's, single-objective only, so not a sweep's sampler
    with pytest.raises(ConfigError, match="search.sampler: unknown sampler 'cmaes'; choose one of nsga2, nsga3, tpe, gp"):
        load_config(None, ["search.sampler=cmaes"], base=BASE)
    with pytest.raises(ValueError, match="method.name: unknown method 'pc-lora'; choose one of fft, lora"):
        recipes.get_recipe("pc-lora")


@pytest.mark.parametrize("name", recipes.METHODS)
def test_a_recipes_keys_are_its_settings_fields(name: str) -> None:
    recipe = recipes.RECIPES[name]
    assert recipe.settings is settings.SETTINGS[name]
    assert recipe.keys == tuple(f"method.{f.name}" for f in dataclasses.fields(recipe.settings))
    composed = {f.name for f in dataclasses.fields(MethodConfig)}
    assert set(recipe.settings().__dict__) <= composed  # every key of the method is a key of the config


def test_the_method_section_is_name_and_every_methods_fields_once() -> None:
    fields = [f.name for f in dataclasses.fields(MethodConfig)]
    assert fields[0] == "name" and len(fields) == len(set(fields))
    assert set(fields) == {"name"} | {f.name for s in settings.SETTINGS.values() for f in dataclasses.fields(s)}
    defaults = MethodConfig()
    for cls in settings.SETTINGS.values():  # each method's defaults are the config's defaults
        assert cls.of(defaults) == cls()
    # shared settings are one definition: PC-LoRA's and KD-LoRA's rank and kd_weight are the same field
    for shared, name in ((AdapterSettings, "rank"), (TeacherSettings, "kd_weight")):
        field = shared.__dataclass_fields__[name]
        assert PCLoRASettings.__dataclass_fields__[name] is field is KDLoRASettings.__dataclass_fields__[name]


def test_a_copied_setting_is_refused() -> None:
    @dataclass
    class Copy(AdapterSettings):
        kd_weight: float = 0.5  # TeacherSettings' own, written again

    with pytest.raises(TypeError, match="method.kd_weight is defined by both pc_lora and copy; define it once"):
        settings._compose({"pc_lora": PCLoRASettings, "copy": Copy})


@pytest.mark.parametrize(("cls", "values", "expected"), [
    (PCLoRASettings, {"decay_end": 1.5},
     "method.decay_end: must lie in (0, 1] (the share of training steps over which λ decays to 0), got 1.5"),
    (PCLoRASettings, {"adapter_init": "pissa"}, "method.adapter_init: unknown initialisation 'pissa'; choose one of"),
    (PCLoRASettings, {"kd_weight": 0.8, "logit_kd_weight": 0.5, "kd_teacher": "finetuned"},
     "method.logit_kd_weight: must lie in [0, 1 − method.kd_weight], got 0.5 with kd_weight 0.8"),
    (KDLoRASettings, {"student_layers": 0}, "method.student_layers: must be at least 1 (or null), got 0"),
    (KDLoRASettings, {"student_init": "random"}, "method.student_init: unknown initialisation 'random'"),
    (AdapterSettings, {"rank": 0}, "method.rank: must be at least 1, got 0"),
    (TeacherSettings, {"temperature": 0.0}, "method.temperature: must be positive, got 0.0"),
])
def test_an_out_of_range_setting_names_its_key_from_the_methods_own_settings(cls, values, expected) -> None:
    problems = cls(**values).problems()
    assert len(problems) == 1 and problems[0].startswith(expected)
    # and the same message when a config of a method with these settings is loaded, once, though several
    # methods compose the setting
    method = next(name for name, c in settings.SETTINGS.items() if issubclass(c, cls) and c is not MethodSettings)
    with pytest.raises(ConfigError) as info:
        load_config(None, [f"method.name={method}", *(f"method.{k}={v}" for k, v in values.items())], base=BASE)
    assert [p for p in info.value.problems if p.startswith(expected)] == problems


def test_a_setting_is_checked_by_the_methods_the_config_can_run_only() -> None:
    """student_layers 0 means nothing to FFT: refused when the sweep may draw KD-LoRA, not otherwise."""
    assert load_config(None, ["method.name=fft", "method.student_layers=0"], base=BASE).method.student_layers == 0
    with pytest.raises(ConfigError) as info:
        load_config(None, ["method.name=fft", "method.student_layers=0",
                           'space.method.name={"choice": ["fft", "kd_lora"]}'], base=BASE)
    assert any(p.startswith("method.student_layers: must be at least 1") for p in info.value.problems)


def test_a_refused_weight_is_not_blamed_twice() -> None:
    """kd_weight 2 is refused on its own; logit_kd_weight's sum check does not repeat it."""
    assert PCLoRASettings(kd_weight=2.0, logit_kd_weight=0.5, kd_teacher="finetuned").problems() == [
        "method.kd_weight: must lie in [0, 1], got 2.0"]


def test_config_files_written_before_the_settings_still_load() -> None:
    """A config.yaml of a past run (every method key of its day, in the old order) rebuilds the same config."""
    path = REPO / "results/gpu/fidelity/ablation-pc-lora-stsb/trials/f075b_00000/config.yaml"
    raw = yaml.safe_load(Path(path).read_text())
    # pinned since svd became the default (what those runs started at); the file as written had no such key
    assert raw["method"].pop("adapter_init") == "zero"
    cfg = config_from_dict(raw)
    assert {k: getattr(cfg.method, k) for k in raw["method"]} == raw["method"]
