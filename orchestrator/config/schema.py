"""The run and sweep configuration: a few dataclasses, loaded from YAML, validated once.

Defaults live here and nowhere else. `load_config` (orchestrator/spec/load.py, above the recipes) reads a
YAML file, applies `--set dotted.key=value` overrides (typed like the field they set), and validates
everything before any other work starts; every problem is reported at once in a `ConfigError`, each
naming the key and the fix.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml

from orchestrator.base.typed import (  # noqa: F401 - MAX_* are part of this module's API
    MAX_INT,
    MAX_STRING,
    _build,
    _closest,
    _coerce,
    _hints,
    _key_text,
    _show,
    _type_name,
    _why,
)

# The method section is composed from each method's settings (orchestrator/config/settings/).
from orchestrator.config.settings import MethodConfig
from orchestrator.config.settings.pc_lora import DECAY_SCHEDULES  # noqa: F401 - the choices a config accepts

# per_method: {method: {kind: args}}, one dimension per method (learning rates differ by 10-50x between
# full fine-tuning and adapters that must replace a layer). Kept last: it nests the others.
SPACE_KINDS = ("choice", "int", "uniform", "loguniform", "grid", "per_method")
# Optuna 5.0's samplers that handle several objectives: NSGA-II, NSGA-III (reference points), TPE (MOTPE), the
# Gaussian-process sampler (log expected hypervolume improvement; it models only the dimensions every method
# shares, drawing the others at random), random; and the grid.
SAMPLERS = ("nsga2", "nsga3", "tpe", "gp", "random", "grid")
SCHEDULERS = ("asha", "mo_asha", "none")
# Every key a metrics.json holds that can be an objective (task-specific metrics are added by the task).
OBJECTIVE_METRICS = (
    "metric", "accuracy", "f1", "mcc", "pearson", "spearman", "params", "params_no_embeddings",
    "flops", "trainable_params", "train_seconds",
)
# Bounds on what a config may hold, so that hostile or mistyped input ends in a clean error instead of
# an overflow, a file name the OS refuses, or a message megabytes long.
MAX_NAME = 100             # sweep / run names become folder and MLflow experiment names
MAX_GRID_POINTS = 100_000
# Keys that may not be searched: where results go, how they are tracked, and what code may run.
UNSEARCHABLE_PREFIXES = ("search.", "space.", "tracking.", "resources.")
UNSEARCHABLE_KEYS = ("name", "results_dir", "trust_remote_code")
# Folders results_dir may not be or lie in: running as root, a sweep would write (and prune) there.


class ConfigError(ValueError):
    """One or more problems with a configuration; `problems` lists them, each naming its key."""

    def __init__(self, problems: list[str], source: str | None = None):
        self.problems = problems
        where = f" in {source}" if source else ""
        if len(problems) == 1:  # one line: the problem names its key (and the file, where it is one)
            super().__init__(f"{problems[0]}" + (f" ({source})" if source else ""))
            return
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{len(problems)} problems{where}:\n{lines}")


@dataclass
class TrainConfig:
    epochs: int = 3
    batch_size: int = 32
    # null = the method's own learning rate (orchestrator/recipes/: 5e-5 FFT, 5e-4 LoRA and KD-LoRA, 1e-3 PC-LoRA
    # from its default svd start, 2e-3 from the zero start; narrowed on wider models).
    lr: float | None = None
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06
    max_grad_norm: float = 1.0
    max_length: int = 128
    max_examples: int | None = None
    seed: int = 0
    augment: bool = False
    # Text: batches of like lengths, drawn from random pools of 8 batches each epoch (HF Trainer's
    # group_by_length, with small pools so batches stay random). A batch is padded to its longest row, so a
    # shuffled SST-2 batch is two thirds padding; grouped, under a quarter. Off = the plain shuffle.
    group_by_length: bool = False


@dataclass
class EvalConfig:
    max_examples: int | None = None
    batch_size: int = 128


@dataclass
class ResourcesConfig:
    workers: int = 1
    use_gpu: bool | Literal["auto"] = "auto"
    cpus_per_worker: int = 1
    # Fractional GPUs let several small trials share one device.
    gpus_per_worker: float = 1.0
    # Where a sweep's trial trains. auto: in the Tune trial's own process when it has one worker and Ray
    # is local (no RAY_ADDRESS): no Train controller or worker group per trial, which was half of a 2-core
    # quickstart's wall time; otherwise a Ray Train TorchTrainer (DDP, lost workers restarted on other
    # nodes). trial / torch_trainer choose one; trial takes one worker only.
    trainer: Literal["auto", "trial", "torch_trainer"] = "auto"


@dataclass
class SearchConfig:
    num_samples: int = 8
    objectives: list[str] = field(default_factory=lambda: ["metric:max", "params:min"])
    sampler: str = "nsga2"
    scheduler: str = "asha"
    grace_period: int = 1
    # ASHA's η: at each rung a trial goes on only if it is in the top 1/η of those recorded there.
    reduction_factor: float = 2.0
    # Hyperband's brackets: bracket s first compares a trial at grace_period · η^s epochs (the last may never);
    # each trial is drawn into one (orchestrator/base/rungs.py). 1: plain (MO-)ASHA.
    brackets: int = 1
    max_concurrent_trials: int | None = None
    # Ablations: every configuration is repeated once per seed (sets train.seed).
    seeds: list[int] | None = None
    # Where the Optuna study lives: null = sqlite:///<results_dir>/<name>/optuna.db (optuna-dashboard opens
    # it; --resume continues it); an SQLAlchemy URL (postgresql://...) for a study a team shares.
    storage: str | None = None
    # Bounds a trial must meet to count (orchestrator/config/constraints.py), e.g. ["params_kept_pct <= 10"]:
    # NSGA-II/TPE sample towards them, fronts and reports leave trials that miss one out.
    constraints: list[str] = field(default_factory=list)


@dataclass
class TrackingConfig:
    # None = an MLflow sqlite database under results/ (or MLFLOW_TRACKING_URI when set).
    uri: str | None = None
    log_models: bool = False


@dataclass
class Config:
    name: str = "run"
    task: str = "glue/sst2"
    model: str = "bert-base-uncased"
    data_dir: str | None = None
    results_dir: str = "results"
    method: MethodConfig = field(default_factory=MethodConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    resources: ResourcesConfig = field(default_factory=ResourcesConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    # dotted key -> {kind: args}; see `validate_space`.
    space: dict[str, dict[str, Any]] = field(default_factory=dict)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    # Lets a hub model run its own Python code (transformers' trust_remote_code); off unless asked for.
    trust_remote_code: bool = False

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def get(self, dotted: str) -> Any:
        obj: Any = self
        for part in dotted.split("."):
            obj = getattr(obj, part)
        return obj


# ---------------------------------------------------------------------------------------------
# Typed construction from plain dicts: orchestrator/base/typed.py (generic, shared with nothing else yet)


def field_type(dotted: str) -> Any:
    """The declared type of a dotted key (`method.rank` -> int); KeyError when there is no such key."""
    cls: Any = Config
    parts = dotted.split(".")
    for i, part in enumerate(parts):
        hints = _hints(cls)
        if part not in hints:
            raise KeyError(dotted)
        tp = hints[part]
        if i == len(parts) - 1:
            if dataclasses.is_dataclass(tp):
                raise KeyError(dotted)  # a whole section, not a value
            return tp
        if not dataclasses.is_dataclass(tp):
            raise KeyError(dotted)
        cls = tp
    raise KeyError(dotted)


def scalar_keys() -> list[str]:
    """Every dotted key that holds a value (what `--set` and `space` may name)."""
    keys = []

    def walk(cls: type, prefix: str) -> None:
        for name, tp in _hints(cls).items():
            if dataclasses.is_dataclass(tp):
                walk(tp, f"{prefix}{name}.")
            else:
                keys.append(f"{prefix}{name}")

    walk(Config, "")
    return keys


# ---------------------------------------------------------------------------------------------
# Overrides


def parse_override(text: str) -> tuple[str, Any]:
    """`method.rank=16` -> ("method.rank", 16). Values are YAML scalars, never evaluated as code."""
    if "=" not in text:
        raise ConfigError([f"--set {_show(text)}: expected dotted.key=value, e.g. --set method.rank=16"])
    key, _, raw = text.partition("=")
    key = key.strip()
    try:
        # safe_load: YAML tags that build Python objects (!!python/object/apply:...) are refused.
        value = yaml.safe_load(raw) if raw.strip() else None
    except (yaml.YAMLError, ValueError, RecursionError) as exc:  # ValueError: 2001-02-30, 5000-digit ints
        raise ConfigError([f"--set {_key_text(key)}: cannot read value {_show(raw)} "
                           f"({exc.__class__.__name__}); give a YAML scalar, e.g. 16, 1.0e-4, sine, null"]) from None
    return key, value


def apply_overrides(raw: dict[str, Any], overrides: list[str], problems: list[str]) -> dict[str, Any]:
    known = set(scalar_keys())
    for text in overrides:
        try:
            key, value = parse_override(text)
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        if key not in known and not key.startswith("space."):
            close = _closest(key, sorted(known))
            hint = f"; did you mean '{close}'?" if close else ""
            problems.append(f"--set {_key_text(key)}: unknown key{hint}")
            continue
        if key.startswith("space."):
            raw.setdefault("space", {})
            if not isinstance(raw["space"], dict):
                raw["space"] = {}
            raw["space"][key[len("space."):]] = value
            continue
        node = raw
        parts = key.split(".")
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[parts[-1]] = value
    return raw


def is_safe_name(name: str) -> bool:
    """A sweep or run name that is safe as one folder name: no separators, no '..', not empty."""
    return (isinstance(name, str) and len(name) <= MAX_NAME and ".." not in name
            and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name) is not None)


def objective_pairs(cfg: Config) -> list[tuple[str, str]]:
    return [(o.partition(":")[0], o.partition(":")[2]) for o in cfg.search.objectives]


def _with_value(cfg: Config, dotted: str, value: Any) -> Config:
    section, _, key = dotted.rpartition(".")
    if not section:
        return dataclasses.replace(cfg, **{key: value})
    sub = dataclasses.replace(getattr(cfg, section), **{key: value})
    return dataclasses.replace(cfg, **{section: sub})


def with_values(cfg: Config, values: dict[str, Any]) -> Config:
    """A copy of `cfg` with dotted keys set (types coerced as for --set); a value of the wrong type is a
    ConfigError naming the key, never silently stored."""
    problems = []
    for dotted, value in values.items():
        ok, converted = _coerce(value, field_type(dotted))
        if not ok:
            problems.append(f"{dotted}: expected {_type_name(field_type(dotted))}, got {_show(value)}{_why(value)}")
            continue
        cfg = _with_value(cfg, dotted, converted)
    if problems:
        raise ConfigError(problems)
    return cfg


def config_from_dict(raw: dict[str, Any]) -> Config:
    """Rebuild a validated config from `Config.to_dict()` output (e.g. inside a Ray worker)."""
    problems: list[str] = []
    cfg = _build(Config, raw, "", problems)
    if problems:
        raise ConfigError(problems)
    return cfg


# Sections that describe the sweep or where results go, not a trial's settings.
FLAT_EXCLUDED = ("search", "tracking", "space", "results_dir")


def flat_scalars(config: dict[str, Any]) -> dict[str, Any]:
    """A config (`Config.to_dict()` or a config.yaml read back) as the dotted scalar keys trials.csv,
    MLflow params and the leaderboards share: sweep-level sections left out, lists joined by commas,
    secrets in strings redacted."""
    from orchestrator.base.redact import redact

    flat: dict[str, Any] = {}

    def put(key: str, value: Any) -> None:
        value = ",".join(map(str, value)) if isinstance(value, list) else value
        flat[key] = redact(value) if isinstance(value, str) else value

    for key, value in config.items():
        if key in FLAT_EXCLUDED:
            continue
        if isinstance(value, dict):
            for sub, v in value.items():
                put(f"{key}.{sub}", v)
        else:
            put(key, value)
    return flat


def dump_yaml(cfg: Config) -> str:
    """The config as YAML for people and files (--dry-run, config.yaml, sweep.yaml): secrets redacted,
    so it is not a way to connect (workers get `Config.to_dict()`)."""
    from orchestrator.base.redact import redact_value

    return yaml.safe_dump(redact_value(cfg.to_dict()), sort_keys=False, allow_unicode=True)
