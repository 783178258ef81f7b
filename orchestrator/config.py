"""The run and sweep configuration: a few dataclasses, loaded from YAML, validated once.

Defaults live here and nowhere else. `load_config` reads a YAML file, applies `--set dotted.key=value`
overrides (typed like the field they set), and validates everything before any other work starts;
every problem is reported at once in a `ConfigError`, each naming the key and the fix.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from methods.schedules import SCHEDULES as DECAY_SCHEDULES
from orchestrator.constraints import parse as parse_constraint
from orchestrator.recipes import METHODS, get_recipe, method_specific_keys
from orchestrator.typed import (  # noqa: F401 - MAX_* are part of this module's API
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

# per_method: {method: {kind: args}}, one dimension per method (learning rates differ by 10-50x between
# full fine-tuning and adapters that must replace a layer). Kept last: it nests the others.
SPACE_KINDS = ("choice", "int", "uniform", "loguniform", "grid", "per_method")
SAMPLERS = ("nsga2", "tpe", "random", "grid")
SCHEDULERS = ("asha", "mo_asha", "none")
# Every key a metrics.json holds that can be an objective (task-specific metrics are added by the task).
OBJECTIVE_METRICS = (
    "metric", "accuracy", "f1", "mcc", "pearson", "spearman", "params", "params_no_embeddings",
    "flops", "trainable_params", "train_seconds",
)
# Searched keys that only mean something for some methods (each recipe lists its own): a sweep over
# several methods samples them only for those (conditional dimensions); a run of another ignores them.
METHOD_SPECIFIC_KEYS = method_specific_keys()
# Bounds on what a config may hold, so that hostile or mistyped input ends in a clean error instead of
# an overflow, a file name the OS refuses, or a message megabytes long.
MAX_NAME = 100             # sweep / run names become folder and MLflow experiment names
MAX_GRID_POINTS = 100_000
MAX_CONFIG_BYTES = 10 * 2**20
# Keys that may not be searched: where results go, how they are tracked, and what code may run.
UNSEARCHABLE_PREFIXES = ("search.", "space.", "tracking.", "resources.")
UNSEARCHABLE_KEYS = ("name", "results_dir", "trust_remote_code")
# Folders results_dir may not be or lie in: running as root, a sweep would write (and prune) there.
SYSTEM_DIRS = ("/etc", "/usr", "/bin", "/sbin", "/boot", "/dev", "/proc", "/sys", "/lib", "/lib32", "/lib64")


class ConfigError(ValueError):
    """One or more problems with a configuration; `problems` lists them, each naming its key."""

    def __init__(self, problems: list[str], source: str | None = None):
        self.problems = problems
        where = f" in {source}" if source else ""
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{len(problems)} problem(s){where}:\n{lines}")


@dataclass
class MethodConfig:
    name: str = "pc_lora"
    rank: int = 8
    # LoRA scaling numerator; None = the method's own: rank for PC-LoRA (scaling 1, methods/pc_lora.py),
    # 2 x rank for LoRA and KD-LoRA (scaling 2, the KD-LoRA code's; methods/baselines.py).
    alpha: float | None = None
    decay_schedule: str = "sine"
    decay_end: float = 0.8
    kd_weight: float = 0.5
    temperature: float = 2.0
    # PC-LoRA: None = the pre-trained model itself is the feature-KD teacher (no second copy);
    # KD-LoRA: None = `model`, fully fine-tuned once per task and reused.
    teacher: str | None = None
    # PC-LoRA's feature-KD teacher when method.teacher is null: `pretrained` (the paper's: the model itself
    # at λ = 1) or `finetuned` (the task's fully fine-tuned teacher, cached as for KD-LoRA).
    kd_teacher: str = "pretrained"
    # PC-LoRA: weight of logit KD from the fine-tuned teacher beside feature KD (0 = the paper's loss).
    logit_kd_weight: float = 0.0
    # PC-LoRA: how the adapters start: `zero` (the paper's: B = C = 0) or `svd` (W's top-r singular
    # triplets and C = b, λ scaling the remainder; methods/pc_lora.py ADAPTER_INITS).
    adapter_init: str = "zero"
    # KD-LoRA student: another checkpoint, or the teacher cut to `student_layers` evenly spaced layers.
    student: str | None = None
    student_layers: int | None = None
    # What a cut student starts from: `pretrained` (the paper's: the pre-trained model cut to k layers) or
    # `finetuned_teacher` (the fine-tuned teacher cut, head included: another method, asked for by name).
    student_init: str = "pretrained"
    teacher_epochs: int = 3
    teacher_lr: float = 5.0e-5
    # Module-name patterns to adapt instead of the per-architecture defaults.
    target_modules: list[str] | None = None


@dataclass
class TrainConfig:
    epochs: int = 3
    batch_size: int = 32
    # null = the method's own learning rate (orchestrator/recipes/: 5e-5 FFT, 5e-4 LoRA and KD-LoRA, 2e-3 PC-LoRA).
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
    max_concurrent_trials: int | None = None
    # Ablations: every configuration is repeated once per seed (sets train.seed).
    seeds: list[int] | None = None
    # Where the Optuna study lives: null = sqlite:///<results_dir>/<name>/optuna.db (optuna-dashboard opens
    # it; --resume continues it); an SQLAlchemy URL (postgresql://...) for a study a team shares.
    storage: str | None = None
    # Bounds a trial must meet to count (orchestrator/constraints.py), e.g. ["params_kept_pct <= 10"]:
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
# Typed construction from plain dicts: orchestrator/typed.py (generic, shared with nothing else yet)


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


# ---------------------------------------------------------------------------------------------
# Validation


def _range_problems(cfg: Config) -> list[str]:
    """Values out of range; every message names the key and says what fits."""
    p: list[str] = []
    m, t = cfg.method, cfg.train

    def need(cond: bool, msg: str) -> None:
        if not cond:
            p.append(msg)

    # The name becomes a folder under results_dir and an MLflow experiment: no '/', '..', or empty name.
    need(is_safe_name(cfg.name),
         f"name: {_show(cfg.name)} is not a safe folder name; use 1 to {MAX_NAME} letters, digits, '.', '_' "
         "and '-', starting with a letter or digit (no '/', no '..'), e.g. name: sst2-pc-lora")
    need(m.name in METHODS, f"method.name: unknown method {m.name!r}; choose one of {', '.join(METHODS)}")
    need(m.rank >= 1, f"method.rank: must be at least 1, got {m.rank}")
    need(m.alpha is None or m.alpha > 0, f"method.alpha: must be positive or null, got {m.alpha}")
    need(m.decay_schedule in DECAY_SCHEDULES,
         f"method.decay_schedule: unknown schedule {m.decay_schedule!r}; choose one of "
         f"{', '.join(DECAY_SCHEDULES)}")
    need(0.0 < m.decay_end <= 1.0 and not math.isnan(m.decay_end),
         f"method.decay_end: must lie in (0, 1] (the share of training steps over which λ decays "
         f"to 0), got {m.decay_end}")
    need(0.0 <= m.kd_weight <= 1.0, f"method.kd_weight: must lie in [0, 1], got {m.kd_weight}")
    need(m.temperature > 0, f"method.temperature: must be positive, got {m.temperature}")
    need(m.student_layers is None or m.student_layers >= 1,
         f"method.student_layers: must be at least 1 (or null), got {m.student_layers}")
    need(not (m.student and m.student_layers),
         "method.student / method.student_layers: give one of them, not both (a checkpoint, or the "
         "teacher cut to k layers)")
    need(0.0 <= m.logit_kd_weight <= 1.0, f"method.logit_kd_weight: must lie in [0, 1], got {m.logit_kd_weight}")
    if m.name in METHODS:
        p.extend(get_recipe(m.name).config_problems(cfg))
    need(m.teacher_epochs >= 1, f"method.teacher_epochs: must be at least 1, got {m.teacher_epochs}")
    need(m.teacher_lr > 0, f"method.teacher_lr: must be positive, got {m.teacher_lr}")
    need(t.epochs >= 1, f"train.epochs: must be at least 1, got {t.epochs}")
    need(t.batch_size >= 1, f"train.batch_size: must be at least 1, got {t.batch_size}")
    need(t.lr is None or t.lr > 0, f"train.lr: must be positive (or null: the method's own), got {t.lr}")
    need(t.weight_decay >= 0, f"train.weight_decay: must be >= 0, got {t.weight_decay}")
    need(0 <= t.warmup_ratio < 1, f"train.warmup_ratio: must lie in [0, 1), got {t.warmup_ratio}")
    need(t.max_grad_norm > 0, f"train.max_grad_norm: must be positive, got {t.max_grad_norm}")
    need(t.max_length >= 8, f"train.max_length: must be at least 8 tokens, got {t.max_length}")
    need(t.max_examples is None or t.max_examples >= 2,
         f"train.max_examples: must be at least 2 (or null for the full split), got {t.max_examples}")
    need(cfg.eval.max_examples is None or cfg.eval.max_examples >= 2,
         f"eval.max_examples: must be at least 2 (or null for the full split), got {cfg.eval.max_examples}")
    need(cfg.eval.batch_size >= 1, f"eval.batch_size: must be at least 1, got {cfg.eval.batch_size}")
    r = cfg.resources
    need(r.workers >= 1, f"resources.workers: must be at least 1, got {r.workers}")
    need(r.cpus_per_worker >= 1, f"resources.cpus_per_worker: must be at least 1, got {r.cpus_per_worker}")
    need(0 < r.gpus_per_worker <= 8, f"resources.gpus_per_worker: must lie in (0, 8], got {r.gpus_per_worker}")
    need(r.trainer != "trial" or r.workers == 1,
         f"resources.trainer: trial trains in the Tune trial's own process, one worker, but resources.workers is "
         f"{r.workers}; set resources.trainer: torch_trainer (or auto) for DDP over several workers")
    s = cfg.search
    need(s.num_samples >= 1, f"search.num_samples: must be at least 1, got {s.num_samples}")
    need(s.sampler in SAMPLERS, f"search.sampler: unknown sampler {s.sampler!r}; choose one of {', '.join(SAMPLERS)}")
    need(s.scheduler in SCHEDULERS,
         f"search.scheduler: unknown scheduler {s.scheduler!r}; choose one of {', '.join(SCHEDULERS)}")
    need(s.grace_period >= 1, f"search.grace_period: must be at least 1 epoch, got {s.grace_period}")
    need(s.reduction_factor > 1, f"search.reduction_factor: must be greater than 1, got {s.reduction_factor}")
    need(s.max_concurrent_trials is None or s.max_concurrent_trials >= 1,
         f"search.max_concurrent_trials: must be at least 1 (or null: from the cluster), got {s.max_concurrent_trials}")
    need(s.seeds is None or len(s.seeds) > 0, "search.seeds: give at least one seed, or null")
    need(len(s.objectives) > 0, "search.objectives: give at least one, e.g. [metric:max, params:min]")
    for obj in s.objectives:
        metric, _, mode = obj.partition(":")
        need(bool(metric) and mode in ("max", "min"),
             f"search.objectives: {obj!r} must read NAME:max or NAME:min, e.g. metric:max")
    for text in s.constraints:
        try:
            parse_constraint(text)
        except ValueError as err:
            need(False, f"search.constraints: {err}")
    return p


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


def with_method_defaults(cfg: Config) -> Config:
    """`cfg` with the keys it leaves null filled from its method's recipe (train.lr: null = the method's own).

    Applied per run (a sweep over several methods keeps null in its base config, so each trial gets
    its own method's value), before config.yaml is written, so every run folder holds the value used.
    """
    defaults = get_recipe(cfg.method.name).defaults_for(cfg)
    return with_values(cfg, {k: v for k, v in defaults.items() if cfg.get(k) is None})


def _expand(ref: str) -> Path | None:
    """`ref` as a path with ~ expanded; None when it cannot be one (~unknown-user, a NUL character)."""
    try:
        path = Path(ref).expanduser()
        os.fspath(path).encode()
    except (RuntimeError, ValueError, OSError, UnicodeError):
        return None
    return None if "\x00" in str(path) else path


def _is(test: str, path: Path | None) -> bool:
    """path.exists() / is_dir() / is_file() that says False instead of raising (name too long, ...)."""
    try:
        return path is not None and bool(getattr(path, test)())
    except (OSError, ValueError):
        return False


def is_local_ref(ref: str) -> bool:
    """A model reference names a local folder when it looks like a path or exists on disk."""
    return ref.startswith((".", "/", "~")) or ref.count("/") > 1 or _is("exists", _expand(ref))


def model_problem(ref: str, key: str) -> str | None:
    """A model reference is a local folder with a config.json, or a hub id (`org/name`)."""
    if is_local_ref(ref):
        path = _expand(ref)
        if not _is("is_dir", path):
            return f"{key}: model folder {_show(ref)} does not exist; give a folder with config.json or a hub id"
        if not _is("is_file", path / "config.json"):
            return f"{key}: {_show(ref)} has no config.json; give a Hugging Face model folder or a hub id"
        return None
    if not re.fullmatch(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?", ref, flags=re.ASCII) or len(ref) > MAX_NAME:
        return (f"{key}: {_show(ref)} is neither a local folder nor a hub id like 'bert-base-uncased' or "
                "'org/name'")
    return None


def _results_dir_problem(ref: str) -> str | None:
    """results_dir: a folder we can create (or an existing one) under which everything is written."""
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", ref):
        return (f"results_dir: {_show(ref)} is a URI; object stores are not supported (the sweep writes plain "
                "files and takes file locks): give a POSIX folder every node mounts, e.g. /shared/results")
    path = _expand(ref) if ref.strip() else None
    if path is None:
        return (f"results_dir: {_show(ref)} is not a usable folder path; give a folder such as results "
                "(~user must name an existing user)")
    try:
        path.resolve()
    except (OSError, RuntimeError, ValueError) as exc:
        return f"results_dir: {_show(ref)} cannot be resolved ({exc.__class__.__name__}); give another folder"
    if _is("exists", path) and not _is("is_dir", path):
        return f"results_dir: {_show(ref)} exists and is not a folder; give a folder such as results"
    resolved = path.resolve()
    if resolved == Path("/") or any(resolved == Path(d) or Path(d) in resolved.parents for d in SYSTEM_DIRS):
        return (f"results_dir: {_show(ref)} is a system folder ({resolved}); a sweep writes and deletes files "
                "there: give a folder of your own, such as results")
    return None


def validate(cfg: Config) -> list[str]:
    """Every problem of a built config: ranges here, the search space and the resources it names in
    orchestrator/validation.py."""
    from orchestrator.validation import resource_problems, validate_space

    return _range_problems(cfg) + validate_space(cfg) + resource_problems(cfg)


def _duplicate_key(node: yaml.Node | None) -> str | None:
    """The first key given twice in one mapping of a composed YAML document, as a message; None if none.

    YAML's last-one-wins would silently drop the first (a second `train:` section turning a
    1,000-example run into a full-data one), so a config may not repeat a key.
    """
    stack = [node] if node is not None else []
    visited: set[int] = set()  # aliases share nodes, and may be recursive (&a [*a])
    while stack:
        current = stack.pop()
        if id(current) in visited:
            continue
        visited.add(id(current))
        if isinstance(current, yaml.MappingNode):
            seen: dict[tuple[str, str], int] = {}
            for key_node, value_node in current.value:
                if isinstance(key_node, yaml.ScalarNode):
                    key = (key_node.tag, key_node.value)
                    line = key_node.start_mark.line + 1
                    if key in seen:
                        return (f"key {_show(key_node.value)} appears twice in one section (lines {seen[key]} and "
                                f"{line}); the second would replace the first: keep one")
                    seen[key] = line
                stack.append(value_node)
        elif isinstance(current, yaml.SequenceNode):
            stack.extend(current.value)
    return None


def read_yaml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The YAML file as a dict. safe_load: tags that build Python objects (!!python/object/apply:...)
    are refused with a ConfigError, never run."""
    path = Path(path)
    if not _is("is_file", path):
        raise ConfigError([f"--config: file {_show(str(path))} does not exist"])
    try:
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise ConfigError([f"{path}: {path.stat().st_size:,} bytes is too large for a config "
                               f"(at most {MAX_CONFIG_BYTES:,}); is it the right file?"])
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError([f"{path}: cannot be read ({exc.strerror or exc.__class__.__name__})"]) from None
    try:
        duplicate = _duplicate_key(yaml.compose(data, Loader=yaml.SafeLoader))
        if duplicate:
            raise ConfigError([f"{path}: {duplicate}"])
        raw = yaml.safe_load(data)  # bytes: PyYAML detects UTF-8/16 and refuses undecodable input
    except yaml.YAMLError as exc:
        raise ConfigError([f"{path}: not valid YAML: {exc}"]) from None
    except RecursionError:
        raise ConfigError([f"{path}: not valid YAML: nested too deeply"]) from None
    except ValueError as exc:  # a date like 2001-02-30, an integer of more than 4300 digits
        raise ConfigError([f"{path}: not valid YAML: {exc}"]) from None
    if raw is None or raw == {}:  # every key at its default would mean the hub's bert-base-uncased on SST-2
        raise ConfigError([f"{path}: the file is empty; a config names at least task: and model: "
                           "(start from search_spaces/quickstart.yaml)"])
    if not isinstance(raw, dict):
        raise ConfigError([f"{path}: the top level must be a mapping of keys (name:, task:, model:, ...)"])
    return raw


def resolve_paths(cfg: Config) -> Config:
    """Local paths made absolute, so that Ray workers (whose working directory differs) find them."""

    def absolute(ref: str | None) -> str | None:
        return str(Path(ref).expanduser().resolve()) if ref and is_local_ref(ref) else ref

    method = dataclasses.replace(cfg.method, teacher=absolute(cfg.method.teacher),
                                 student=absolute(cfg.method.student))
    space = {}
    for key, spec in cfg.space.items():
        if key in ("model", "method.teacher", "method.student") and isinstance(spec, dict):
            spec = {kind: [absolute(v) if isinstance(v, str) else v for v in vals] if isinstance(vals, list) else vals
                    for kind, vals in spec.items()}
        space[key] = spec
    return dataclasses.replace(
        cfg, model=absolute(cfg.model), data_dir=str(Path(cfg.data_dir).expanduser().resolve()) if cfg.data_dir else None,
        results_dir=str(Path(cfg.results_dir).expanduser().resolve()), method=method, space=space)


def load_config(path: str | os.PathLike[str] | None, overrides: list[str] | None = None,
                base: dict[str, Any] | None = None) -> Config:
    """Read, override, validate and resolve paths; raises ConfigError listing every problem."""
    raw = read_yaml(path) if path is not None else dict(base or {})
    problems: list[str] = []
    raw = apply_overrides(raw, list(overrides or []), problems)
    cfg = _build(Config, raw, "", problems)
    # Every problem at once: a value of the wrong type was left at its default by _build, so the range
    # and resource checks below see only values that typed correctly and never repeat a type error.
    problems += [p for p in validate(cfg) if p not in problems]
    if problems:
        raise ConfigError(problems, str(path) if path else None)
    if cfg.trust_remote_code:
        warnings.warn("trust_remote_code: true lets the model's hub repository run its own Python code on "
                      "this machine and on every Ray worker; use it only for repositories you trust",
                      UserWarning, stacklevel=2)
    return resolve_paths(cfg)


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
    from orchestrator.redact import redact

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
    from orchestrator.redact import redact_value

    return yaml.safe_dump(redact_value(cfg.to_dict()), sort_keys=False, allow_unicode=True)
