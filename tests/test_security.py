"""Hostile input: nothing runs, leaks or escapes that the user did not ask for.

Threat -> tests:
- YAML tags that build Python objects (config files and --set): test_yaml_python_tags_are_refused_not_run,
  test_set_values_are_never_evaluated
- names that escape the results folder: test_unsafe_names_are_refused_and_nothing_is_written
- secrets in printed configs, config.yaml, MLflow params and error messages: test_redact_*,
  test_dump_yaml_*, test_mlflow_params_hold_no_secret, test_dry_run_and_errors_print_no_secret
- remote code and pickles: test_trust_remote_code_*, test_source_has_no_unsafe_loading_or_binding
- servers bound to every interface: test_source_has_no_unsafe_loading_or_binding
- malformed configs, TSV and Parquet files: the test_fuzz_* property tests (hypothesis)
"""

from __future__ import annotations

import ast
import json
import math
import os
import tempfile
import typing
import warnings
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator import sweep
from orchestrator.base.redact import redact, redact_uri, redact_value
from orchestrator.cli import run_main
from orchestrator.config.schema import (
    DECAY_SCHEDULES,
    SAMPLERS,
    SCHEDULERS,
    Config,
    ConfigError,
    dump_yaml,
    field_type,
    is_safe_name,
    scalar_keys,
    with_values,
)
from orchestrator.recipes import METHODS
from orchestrator.spec.load import load_config
from orchestrator.tracking import runs as tracking
from tests.conftest import REPO

SECRET_PASSWORD = "s3cretPassw0rd"
SECRET_TOKEN = "tok-9f8e7d6c5b4a"
SECRET_URI = f"https://alice:{SECRET_PASSWORD}@mlflow.example.com:5000/api?token={SECRET_TOKEN}&x=1"
SECTIONS = [f.name for f in Config.__dataclass_fields__.values()]


def cli(argv: list[str]) -> int:
    """run_main in-process: the exit status it ends with."""
    with pytest.raises(SystemExit) as info:
        run_main(sweep.main, argv)
    return info.value.code


def files_under(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


# ------------------------------------------------------------------------------------- code execution

PAYLOADS = [
    '!!python/object/apply:os.system ["touch {marker}"]',
    '!!python/object/new:os.system ["touch {marker}"]',
    '!!python/name:os.system',
    '!!python/object/apply:subprocess.call [["touch", "{marker}"]]',
]


@pytest.mark.parametrize("payload", PAYLOADS)
@pytest.mark.parametrize("where", ["document", "value", "set"])
def test_yaml_python_tags_are_refused_not_run(tmp_path, monkeypatch, capsys, payload, where):
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "pwned"
    payload = payload.format(marker=marker)
    config = tmp_path / "cfg.yaml"
    config.write_text({"document": payload, "value": f"name: {payload}\n", "set": "name: ok\n"}[where])
    argv = ["--config", str(config), "--dry-run"] + (["--set", f"name={payload}"] if where == "set" else [])
    assert cli(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and ("python/" in err or "--set name" in err), err
    assert not marker.exists()
    assert files_under(tmp_path) == {"cfg.yaml"}


def test_set_values_are_never_evaluated(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "pwned"
    code = f"__import__('os').system('touch {marker}')"
    for text, key, expected in [
        (f"method.teacher={code}", "method.teacher", code),  # a string, never called
        ("train.epochs=2+1", "train.epochs", None),           # not arithmetic: a string, refused
        ("train.lr=1e-3*10", "train.lr", None),
        ("name=${HOME}", "name", None),                      # not expanded
        (f"name=$(touch {marker})", "name", None),
    ]:
        from orchestrator.config.schema import parse_override

        assert parse_override(text)[0] == key
        if expected is not None:
            assert parse_override(text)[1] == expected
        with pytest.raises(ConfigError) as info:
            load_config(None, [text])
        assert any(p.startswith(key) for p in info.value.problems), info.value.problems
    assert not marker.exists()
    assert parse_override("train.lr=1.0e-4") == ("train.lr", 1.0e-4)  # YAML scalars still work


@pytest.mark.parametrize("name", ["../x", "/abs", "", "a/b", "..", ".", "a/../b", "x\n", "~", "a\\b", "n" * 101,
                                  "ünï", "a b", "-rf"])
def test_unsafe_names_are_refused_and_nothing_is_written(tmp_path, monkeypatch, capsys, name):
    """Sweep names become folders and MLflow experiments only after validation."""
    import orchestrator.search.tune

    started = []
    # Records instead of creating results_dir/name: a regression must not create /abs on this machine.
    monkeypatch.setattr(orchestrator.search.tune, "run_sweep", lambda cfg, **kwargs: started.append(cfg.name) or 0)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    config = work / "cfg.yaml"
    config.write_text(yaml.safe_dump({"name": name, "results_dir": str(work / "results")}))
    assert not is_safe_name(name)
    assert cli(["--config", str(config)]) == 2
    assert "error: name:" in capsys.readouterr().err and not started
    assert files_under(tmp_path) == {"work", "work/cfg.yaml"}
    config.write_text(yaml.safe_dump({"name": "ok", "results_dir": str(work / "results")}))
    # --set too (a JSON string is a YAML double-quoted scalar: the exact name, newline included)
    assert cli(["--config", str(config), "--set", f"name={json.dumps(name)}"]) == 2 and not started
    assert cli(["--config", str(config)]) == 0 and started == ["ok"]  # the same path with a good name


# ------------------------------------------------------------------------------------------ secrets

def test_redact_uris_query_parameters_and_environment(monkeypatch):
    assert redact_uri(SECRET_URI) == "https://alice:***@mlflow.example.com:5000/api?token=***&x=1"
    assert redact("postgresql://u:p%40ss@db/mlflow") == "postgresql://u:***@db/mlflow"
    assert redact("s3://b/k?X-Amz-Signature=abc&X-Amz-Credential=def") == "s3://b/k?X-Amz-Signature=***&X-Amz-Credential=***"
    assert redact("http://h/?api_key=1&password=2&access_token=3&page=4") == "http://h/?api_key=***&password=***&access_token=***&page=4"
    for safe in ("sqlite:////abs/results/mlflow.db", "file:///tmp/mlruns", "http://127.0.0.1:5000", "bert-base-uncased"):
        assert redact(safe) == safe
    monkeypatch.setenv("HF_TOKEN", "hf_abcdefghijklmnop")
    monkeypatch.setenv("MY_SERVICE_PASSWORD", "correct-horse-battery")
    monkeypatch.setenv("SHORT_KEY", "1")  # too short to redact everywhere
    assert redact("model hf_abcdefghijklmnop and correct-horse-battery, 1") == "model *** and ***, 1"
    assert redact_uri(None) is None
    assert redact_value({"a": [SECRET_URI, 3], "b": ("hf_abcdefghijklmnop",)}) == {
        "a": [redact(SECRET_URI), 3], "b": ("***",)}


def secret_cfg(tmp_path: Path, uri: str = SECRET_URI) -> Config:
    return with_values(Config(), {"tracking.uri": uri, "results_dir": str(tmp_path / "results"),
                                  "data_dir": f"https://bob:{SECRET_PASSWORD}@data.example.com/glue?sig={SECRET_TOKEN}",
                                  "method.teacher": f"org/{SECRET_TOKEN}"})


def test_dump_yaml_redacts_but_connections_use_the_real_uri(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", SECRET_TOKEN)
    cfg = secret_cfg(tmp_path)
    text = dump_yaml(cfg)
    assert SECRET_PASSWORD not in text and SECRET_TOKEN not in text
    assert "alice:***@mlflow.example.com" in text and "bob:***@" in text
    assert yaml.safe_load(text)["tracking"]["uri"] == redact(SECRET_URI)
    assert tracking.tracking_uri(cfg) == SECRET_URI  # what MlflowClient gets
    assert SECRET_PASSWORD not in tracking.printable_uri(cfg)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", SECRET_URI)
    plain = with_values(cfg, {"tracking.uri": None})
    assert tracking.tracking_uri(plain) == SECRET_URI and SECRET_TOKEN not in tracking.printable_uri(plain)
    # A written config.yaml, used again as a config, says where the secret must come from.
    (tmp_path / "again.yaml").write_text(text)
    with pytest.raises(ConfigError, match=r"tracking.uri: .* holds a redacted secret .*MLFLOW_TRACKING_PASSWORD"):
        load_config(tmp_path / "again.yaml")


def test_mlflow_params_hold_no_secret(tmp_path, monkeypatch):
    """The run's params (and the whole sqlite store) never hold a secret of the config or the environment."""
    monkeypatch.setenv("HF_TOKEN", SECRET_TOKEN)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    cfg = with_values(secret_cfg(tmp_path), {"tracking.uri": f"sqlite:///{tmp_path / 'mlflow.db'}"})
    params = tracking.flat_params(cfg)
    assert params["data_dir"].startswith("https://bob:***@") and params["method.teacher"] == "org/***"
    run_id = tracking.start_run(cfg, run_name="r", tags={"trial_id": "r"})
    logged = tracking.client(cfg).get_run(run_id).data
    text = repr(logged.params) + repr(logged.tags)
    assert "bob:***@" in text
    assert SECRET_PASSWORD not in text and SECRET_TOKEN not in text
    db = (tmp_path / "mlflow.db").read_bytes()
    assert SECRET_PASSWORD.encode() not in db and SECRET_TOKEN.encode() not in db


def test_dry_run_and_errors_print_no_secret(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", SECRET_TOKEN)
    config = tmp_path / "cfg.yaml"
    config.write_text(yaml.safe_dump({"name": "ok", "tracking": {"uri": SECRET_URI}}))
    assert cli(["--config", str(config), "--dry-run"]) == 0
    out, err = capsys.readouterr()
    assert "alice:***@" in out and SECRET_PASSWORD not in out + err and SECRET_TOKEN not in out + err
    # An error message that echoes a value holding a secret is redacted too.
    assert cli(["--config", str(config), "--set", f"model=https://alice:{SECRET_PASSWORD}@h/m?token={SECRET_TOKEN}"]) == 2
    out, err = capsys.readouterr()
    assert "error: model:" in err and SECRET_PASSWORD not in out + err and SECRET_TOKEN not in out + err
    assert files_under(tmp_path) == {"cfg.yaml"}


# -------------------------------------------------------------------------------- remote code, pickles

def test_trust_remote_code_is_off_unless_the_config_names_it(tmp_path, monkeypatch):
    import transformers

    from orchestrator import tasks as T

    assert Config().trust_remote_code is False
    seen: list[dict[str, Any]] = []

    class Loaded:
        def __len__(self) -> int:  # passes load_processor's "real tokenizer" size check
            return 30522

    def record(ref, **kwargs):
        seen.append(kwargs)
        return Loaded()

    for cls in (transformers.AutoModelForSequenceClassification, transformers.AutoTokenizer,
                transformers.AutoImageProcessor):
        monkeypatch.setattr(cls, "from_pretrained", record)
    sst2, cifar = T.get_task("glue/sst2"), T.get_task("cifar10")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        T.load_model("org/model", sst2)
        T.load_processor("org/model", sst2)
        T.load_processor("org/model", cifar)
    assert not [w for w in caught if "trust_remote_code" in str(w.message)]  # no warning when off
    assert [k["trust_remote_code"] for k in seen] == [False, False, False]
    assert seen[0]["weights_only"] is True
    seen.clear()
    with pytest.warns(UserWarning, match="trust_remote_code"):
        T.load_model("org/model", sst2, trust_remote_code=True)
    assert seen[0]["trust_remote_code"] is True

    config = tmp_path / "cfg.yaml"
    config.write_text("trust_remote_code: true\n")
    with pytest.warns(UserWarning, match="trust_remote_code: true lets"):
        assert load_config(config).trust_remote_code is True
    config.write_text("trust_remote_code: yes please\n")
    with pytest.raises(ConfigError, match="trust_remote_code: expected true/false"):
        load_config(config)
    config.write_text("space: {trust_remote_code: {choice: [true, false]}}\n")
    with pytest.raises(ConfigError, match="space.trust_remote_code: trust_remote_code cannot be searched"):
        load_config(config)


SCANNED = [REPO / "orchestrator", REPO / "methods", REPO / "benchmarks"]
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
HOST_OPTIONS = {"--host", "--dashboard-host", "--bind", "--node-ip-address"}
HOST_KEYWORDS = {"host", "dashboard_host", "bind", "listen", "node_ip_address"}


def _const(node: ast.AST) -> Any:
    return node.value if isinstance(node, ast.Constant) else None


def binds_beyond_loopback(tree: ast.AST) -> list[str]:
    """Servers listening on more than this machine: host=..., --host X in a command list, a default
    --host, socket.bind(("0.0.0.0", port)). Strings that only mention 0.0.0.0 (help, messages) pass."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.List, ast.Tuple)):
            items = [_const(e) for e in node.elts]
            for opt, value in zip(items, items[1:], strict=False):
                if opt in HOST_OPTIONS and isinstance(value, str) and value not in LOOPBACK and not value.startswith("-"):
                    found.append(f"{opt} {value}")
        if not isinstance(node, ast.Call):
            continue
        for k in node.keywords:
            value = _const(k.value)
            if k.arg in HOST_KEYWORDS and isinstance(value, str) and value not in LOOPBACK:
                found.append(f"{k.arg}={value}")
        flags = {_const(a) for a in node.args}
        default = next((_const(k.value) for k in node.keywords if k.arg == "default"), None)
        if flags & HOST_OPTIONS and isinstance(default, str) and default not in LOOPBACK:
            found.append(f"default {default}")
        if isinstance(node.func, ast.Attribute) and node.func.attr == "bind" and node.args \
                and isinstance(node.args[0], ast.Tuple) and node.args[0].elts:
            host = _const(node.args[0].elts[0])
            if isinstance(host, str) and host not in LOOPBACK:
                found.append(f"bind({host!r})")
    return found


def unsafe_calls(source: str) -> list[str]:
    """What the source does that could run code it did not mean to, or listen on every interface."""
    tree = ast.parse(source)
    found = binds_beyond_loopback(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and node.value in ("0.0.0.0", "::"):  # an address, not a mention
            found.append(f"address {node.value}")
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] + ([node.module] if isinstance(node, ast.ImportFrom) else [])
            found += [f"import {n}" for n in names if n and n.split(".")[0] in ("pickle", "cloudpickle", "dill",
                                                                                "marshal", "shelve", "joblib")]
        if isinstance(node, ast.Attribute) and node.attr in ("Loader", "UnsafeLoader", "FullLoader",
                                                             "unsafe_load", "full_load", "load_all") \
                and isinstance(node.value, ast.Name) and node.value.id == "yaml":
            found.append(f"yaml.{node.attr}")
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        kw = {k.arg: k.value for k in node.keywords}
        name = (f"{func.value.id}.{func.attr}" if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name)
                else func.id if isinstance(func, ast.Name) else "")
        const = {k: v.value for k, v in kw.items() if isinstance(v, ast.Constant)}
        if name in ("eval", "exec", "compile", "__import__", "os.system", "os.popen", "pickle.load", "pickle.loads"):
            found.append(name)
        if name == "torch.load" and const.get("weights_only") is not True:
            found.append("torch.load without weights_only=True")
        if name == "yaml.load" and not any(isinstance(v, ast.Attribute) and v.attr in ("SafeLoader", "CSafeLoader")
                                           for v in kw.values()):
            found.append("yaml.load without SafeLoader")
        if const.get("trust_remote_code") is True:
            found.append("trust_remote_code=True")
        if const.get("shell") is True:
            found.append("shell=True")
    return found


def test_the_scanner_finds_each_unsafe_pattern():
    bad = """
import pickle
import yaml, torch, subprocess
torch.load(f)
torch.load(f, weights_only=False)
yaml.load(text)
yaml.load(text, Loader=yaml.Loader)
eval("1")
exec("x = 1")
m.from_pretrained(ref, trust_remote_code=True)
subprocess.run(cmd, shell=True)
server.start(host="0.0.0.0")
ray.init(dashboard_host="192.168.1.2")
subprocess.Popen(["mlflow", "server", "--host", "10.0.0.1"])
parser.add_argument("--host", default="0.0.0.0")
sock.bind(("", 5000))
"""
    found = unsafe_calls(bad)
    for expected in ("import pickle", "torch.load without weights_only=True", "yaml.load without SafeLoader",
                     "yaml.Loader", "eval", "exec", "trust_remote_code=True", "shell=True", "host=0.0.0.0",
                     "address 0.0.0.0", "dashboard_host=192.168.1.2", "--host 10.0.0.1", "default 0.0.0.0",
                     "bind('')"):
        assert expected in found, (expected, found)
    assert found.count("torch.load without weights_only=True") == 2
    good = """
torch.load(p, map_location="cpu", weights_only=True)
yaml.safe_load(text); yaml.load(text, Loader=yaml.SafeLoader)
model.eval()
m.from_pretrained(ref, trust_remote_code=bool(cfg.trust_remote_code))
ray.init(include_dashboard=False, dashboard_host="127.0.0.1")
subprocess.run(["ray", "start", "--head", "--dashboard-host", "127.0.0.1"])
parser.add_argument("--host", default="127.0.0.1", help="a non-loopback address such as 0.0.0.0 needs --allow-remote")
sock.bind((host, port))
"""
    assert unsafe_calls(good) == []


def test_source_has_no_unsafe_loading_or_binding():
    """A regression (pickle, eval, torch.load without weights_only, a server on 0.0.0.0, ...) fails here."""
    problems = []
    files = [p for root in SCANNED for p in sorted(root.rglob("*.py"))]
    assert len(files) > 10
    for path in files:
        problems += [f"{path.relative_to(REPO)}: {f}" for f in unsafe_calls(path.read_text())]
    # Servers the tests start (Ray head, MLflow tracking servers) listen on loopback only. (Tests may pass
    # 0.0.0.0 as an argument to check that it is refused, so only the binding patterns count here.)
    for path in sorted((REPO / "tests").glob("*.py")):
        if path.name != Path(__file__).name:
            problems += [f"{path.relative_to(REPO)}: {f}" for f in binds_beyond_loopback(ast.parse(path.read_text()))]
    assert problems == []


# ------------------------------------------------------------------------------------- fuzzing: configs

SECTION_KEYS = {s: [k.split(".", 1)[1] for k in scalar_keys() if k.startswith(s + ".")] for s in SECTIONS}
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12), st.text(min_size=4097, max_size=4200),
    st.sampled_from(["pc_lora", "kd_lora", "lora", "fft", "sine", "glue/sst2", "auto", "metric:max", "../x",
                     "", "/", "~nosuchuser/x", "a\x00b", "nsga2", "grid", ".", "bert-base-uncased"]),
)
junk = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.one_of(st.text(max_size=6), st.integers(), st.booleans()), inner, max_size=4),
                    max_leaves=12)
odd_keys = st.one_of(st.text(max_size=8), st.integers(), st.booleans(), st.none(), st.floats(allow_nan=False))


@st.composite
def section(draw, name: str) -> Any:
    if draw(st.integers(0, 5)) == 0:
        return draw(junk)  # a list, a number, ... where a mapping belongs
    keys = SECTION_KEYS[name]
    return draw(st.dictionaries(st.sampled_from(keys) | odd_keys, junk | scalars, max_size=4))


@st.composite
def space(draw) -> Any:
    keys = st.sampled_from(scalar_keys() + ["name", "space.x", "method"]) | odd_keys
    spec = st.one_of(
        st.fixed_dictionaries({}, optional={k: junk for k in ("choice", "grid", "int", "uniform", "loguniform")}),
        st.dictionaries(st.sampled_from(["choice", "grid"]), st.lists(scalars, max_size=4), min_size=1, max_size=1),
        st.dictionaries(st.sampled_from(["int", "uniform", "loguniform"]), st.lists(scalars, min_size=2, max_size=2),
                        min_size=1, max_size=1),
        junk)
    return draw(st.dictionaries(keys, spec, max_size=3)) if draw(st.booleans()) else draw(junk)


@st.composite
def documents(draw) -> Any:
    doc: dict[Any, Any] = {}
    for name in draw(st.lists(st.sampled_from(SECTIONS), unique=True, max_size=6)):
        if name in SECTION_KEYS and SECTION_KEYS[name]:
            doc[name] = draw(section(name))
        elif name == "space":
            doc[name] = draw(space())
        else:
            doc[name] = draw(scalars)
    doc.update(draw(st.dictionaries(odd_keys, junk, max_size=2)))
    return doc


KEY_CHOICES = {"method.name": METHODS, "method.decay_schedule": DECAY_SCHEDULES, "search.sampler": SAMPLERS,
               "search.scheduler": SCHEDULERS, "task": ["glue/sst2", "glue/stsb", "cifar10", "imdb", "glue/sst3"],
               "search.objectives": [["metric:max", "params:min"], ["accuracy:max"], ["flops:min"], []]}


def typed_values(key: str) -> st.SearchStrategy:
    """Values of the key's own type, mostly in range: configs near the valid ones."""
    tp = field_type(key)
    args = set(typing.get_args(tp)) or {tp}
    options = [scalars]
    if int in args:
        options.append(st.integers(-2, 70))
    if float in args:
        options.append(st.floats(-0.5, 1.5) | st.sampled_from([1e-4, 5e-4, 1.0, 2.0]))
    if bool in args:
        options.append(st.booleans())
    if type(None) in args:
        options.append(st.none())
    if str in args or typing.get_origin(tp) is typing.Literal:
        options.append(st.sampled_from(["pc_lora", "kd_lora", "lora", "fft", "sine", "cosine", "linear", "nsga2",
                                        "tpe", "random", "grid", "asha", "none", "glue/sst2", "cifar10", "auto",
                                        "bert-base-uncased", "ok-name_1.2"]))
    if typing.get_origin(tp) is list or list in {typing.get_origin(a) for a in args}:
        options.append(st.lists(st.sampled_from(["metric:max", "params:min", "flops:min", "query", "value"]),
                                max_size=3) | st.lists(st.integers(0, 3), max_size=3))
    if key in KEY_CHOICES:
        options = [scalars, st.sampled_from(KEY_CHOICES[key])]
    typed = st.sampled_from(options[1:] or options).flatmap(lambda s: s)
    return st.integers(0, 4).flatmap(lambda i: typed if i else scalars)  # mostly the right type


@st.composite
def near_valid(draw) -> dict[str, Any]:
    """A valid-looking document: a few keys set to values of their type, sometimes a small space."""
    doc: dict[str, Any] = {"name": "fuzz"}
    for key in draw(st.lists(st.sampled_from([k for k in scalar_keys() if k not in ("space", "results_dir")]),
                             unique=True, max_size=5)):
        node = doc
        *sections, last = key.split(".")
        for part in sections:
            node = node.setdefault(part, {})
        node[last] = draw(typed_values(key))
    if draw(st.booleans()):
        key = draw(st.sampled_from(["method.rank", "method.name", "train.lr", "method.decay_schedule", "train.seed"]))
        kind = draw(st.sampled_from(["choice", "grid", "int", "uniform", "loguniform"]))
        n = 2 if kind in ("int", "uniform", "loguniform") else draw(st.integers(1, 4))
        doc["space"] = {key: {kind: draw(st.lists(typed_values(key), min_size=n, max_size=n))}}
    return doc


FRAGMENTS = ["name: ", "method:", "\n  rank: ", "\n", "- ", "{", "}", "[", "]", ": ", ", ", "&a ", "*a", "!!python/object/apply:os.system ['true']",
             "!!binary ", "!!set ", "!!str ", "2001-02-30", "0x" + "f" * 4000, "1" * 5000, "? ", "%YAML 1.1\n", "---\n",
             "...\n", "\t", "'", '"', "#", "|\n  ", "~", ".nan", "-.inf", "1e999", "<<: *a", "\x00", "\ufeff", "é",
             "space: {method.rank: {choice: [", "train: {lr: "]
yamlish = st.lists(st.sampled_from(FRAGMENTS) | st.text(max_size=8), max_size=14).map("".join)
overrides = st.lists(st.tuples(st.sampled_from(scalar_keys() + ["space.method.rank", "nope", ""]) | st.text(max_size=6),
                               st.sampled_from(FRAGMENTS) | st.text(max_size=10))
                     .map(lambda kv: f"{kv[0]}={kv[1]}"), max_size=3)


def key_forms(key: Any) -> list[str]:
    try:
        return [f for f in (str(key), repr(key)[:20]) if f]
    except ValueError:  # an int of more than 4300 digits (0xfff...) has no str
        return [f"<{type(key).__name__}>"]


def names_a_key(problem: str, path: Path, doc: Any) -> bool:
    """The problem starts with the file, --set / --config, or a key (a known one or one of the document)."""
    heads = [str(path), "--set", "--config", "config:", *SECTIONS]
    if isinstance(doc, dict):
        heads += [f for k in doc for f in key_forms(k)]
    return any(problem.startswith(h) for h in heads)


def check_load(path: Path, doc: Any, sets: list[str]) -> None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # trust_remote_code: true
            cfg = load_config(path, sets)
    except ConfigError as exc:
        assert exc.problems
        for problem in exc.problems:
            assert names_a_key(problem, path, doc), problem
            assert len(problem) < 12_000, problem[:300]
        return
    assert isinstance(cfg, Config)
    for key in scalar_keys():  # a valid config holds only finite numbers and bounded strings
        value = cfg.get(key)
        assert not (isinstance(value, float) and not math.isfinite(value)), key
    assert is_safe_name(cfg.name)
    dump_yaml(cfg)


# A few hundred examples keep the file under 30 s; ORCH_FUZZ_EXAMPLES=5000 runs a longer search.
EXAMPLES = int(os.environ.get("ORCH_FUZZ_EXAMPLES", "250"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))


@FUZZ
@given(doc=documents() | near_valid(), sets=overrides)
def test_fuzz_load_config_structured(doc, sets):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "cfg.yaml")
        path.write_text(yaml.safe_dump(doc, allow_unicode=True))
        check_load(path, yaml.safe_load(path.read_text()), sets)  # as read back: YAML folds some characters
        assert files_under(Path(tmp)) == {"cfg.yaml"}


@FUZZ
@given(text=yamlish | st.binary(max_size=200).map(lambda b: b.decode("latin-1")), sets=overrides)
def test_fuzz_load_config_raw_yaml(text, sets):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "cfg.yaml")
        path.write_bytes(text.encode("utf-8", "surrogatepass"))
        try:
            doc = yaml.safe_load(path.read_bytes())
        except Exception:
            doc = None
        check_load(path, doc, sets)


@settings(max_examples=max(60, EXAMPLES // 3), deadline=None, suppress_health_check=list(HealthCheck))
@given(doc=documents() | near_valid() | yamlish, sets=overrides)
def test_fuzz_cli_dry_run_exits_0_or_2_without_traceback(tmp_path_factory, doc, sets):
    work = tmp_path_factory.mktemp("cli")
    path = work / "cfg.yaml"
    if isinstance(doc, str):
        path.write_bytes(doc.encode("utf-8", "surrogatepass"))
    else:
        path.write_text(yaml.safe_dump(doc, allow_unicode=True))
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    argv = ["--config", str(path), "--dry-run"] + [a for s in sets for a in ("--set", s)]
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        code = cli(argv)
    assert code in (0, 2), err.getvalue()[-2000:]
    assert "Traceback" not in err.getvalue()
    if code == 2:
        assert err.getvalue().strip(), "a refusal says why"
    assert files_under(work) == {"cfg.yaml"}


def test_hostile_documents_found_by_fuzzing_fail_cleanly(tmp_path):
    """Regressions of what fuzzing found: each ends in a ConfigError naming the key or the file."""
    billion = "".join(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]\n" for i in range(1, 9))
    cases = {
        "space: {1: {choice: [1]}}": "space.1",
        'model: "~nosuchuserxyz/m"': "model",
        "model: ./" + "a" * 5000: "model",
        "data_dir: " + "a" * 300: "data_dir",
        'results_dir: "~nosuchuserxyz/r"': "results_dir",
        'results_dir: ""': "results_dir",
        "train: {lr: .inf}": "train.lr",
        "method: {decay_end: .nan}": "method.decay_end",
        "space: {train.lr: {uniform: [1.0e-5, " + "9" * 400 + "]}}": "space.train.lr",
        "train: {epochs: " + "9" * 400 + "}": "train.epochs",
        "train: {epochs: 0x" + "f" * 4000 + "}": "train.epochs",
        "train: {epochs: " + "1" * 5000 + "}": str(tmp_path),
        "name: 2001-02-30": str(tmp_path),
        "x: " + "[" * 5000 + "]" * 5000: str(tmp_path),
        'name: "abc\\n"': "name",
        "l0: &l0 [x, x, x, x, x, x, x, x, x]\n" + billion + "name: *l8\n": "name",
        "search: {sampler: grid}\nspace: {method.target_modules: {grid: [[query], [value]]}}": "space.method.target_modules",
        "search: {sampler: grid}\nspace: {" + ", ".join(f"{k}: {{grid: {list(range(2, 40))}}}" for k in
                                                         ("train.seed", "train.batch_size", "method.rank", "eval.batch_size")) + "}":
            "search.sampler",
        "method: [1, 2]": "method",
        "search: {objectives: ['']}": "search.objectives",
    }
    for body, key in cases.items():
        path = tmp_path / "cfg.yaml"
        path.write_text(body)
        with pytest.raises(ConfigError) as info:
            load_config(path)
        assert any(p.startswith(key) for p in info.value.problems), (body[:80], info.value.problems)
        assert max(map(len, info.value.problems)) < 1000, body[:80]


# ---------------------------------------------------------------------------------- fuzzing: data files

TSV_TASKS = ["glue/sst2", "glue/cola", "glue/stsb", "glue/mrpc", "glue/mnli"]
cell = st.one_of(st.text(max_size=8), st.sampled_from(["0", "1", "2", "-1", "positive", "3.5", "nan", "inf",
                                                       "sentence", "label", "score", "#1 String", "Quality", "\"", ""]))
tsv_text = st.lists(st.lists(cell, max_size=5).map("\t".join), max_size=6).map("\n".join)
tsv_bytes = st.one_of(st.binary(max_size=300), tsv_text.map(lambda s: s.encode("utf-8", "surrogatepass")),
                      st.tuples(tsv_text, st.binary(max_size=8)).map(lambda t: t[0].encode() + t[1]),
                      st.just(b"sentence\tlabel\n" + b"x" * 140_000 + b"\t1\n"))


def check_split(task_name: str, root: Path, path: Path) -> None:
    import datasets

    from orchestrator import tasks as T

    try:
        ds = T.load_split(T.get_task(task_name), "train", root)
    except T.DataError as exc:
        assert str(path) in str(exc) or str(path.parent) in str(exc), str(exc)[:300]
        return
    assert isinstance(ds, datasets.Dataset) and len(ds) > 0 and "label" in ds.column_names


@FUZZ
@given(task=st.sampled_from(TSV_TASKS), data=tsv_bytes)
def test_fuzz_tsv_loader(task, data):
    from orchestrator import tasks as T

    spec = T.get_task(task)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp, spec.local_dir)
        folder.mkdir(parents=True)
        path = folder / spec.local_files["train"]
        path.write_bytes(data)
        check_split(task, Path(tmp), path)


parquet_values = st.one_of(
    st.integers(-(2**63), 2**63 - 1), st.floats(), st.text(max_size=5), st.binary(max_size=5), st.none(), st.booleans(),
    st.fixed_dictionaries({"bytes": st.binary(max_size=5), "path": st.none() | st.text(max_size=5)}),
    st.lists(st.integers(0, 5), max_size=3), st.sampled_from([0, 1, 9, 99, -1, 1.5]))


@FUZZ
@given(task=st.sampled_from(["cifar10", "cifar100", "imdb", "glue/stsb", "glue/sst2"]),
       columns=st.dictionaries(st.sampled_from(["img", "label", "fine_label", "text", "sentence", "sentence1",
                                                "sentence2", "x"]),
                               st.lists(parquet_values, max_size=4), max_size=5),
       junk_bytes=st.none() | st.binary(max_size=200))
def test_fuzz_parquet_loader(task, columns, junk_bytes):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from orchestrator import tasks as T

    spec = T.get_task(task)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp, spec.local_dir)
        folder.mkdir(parents=True)
        path = folder / "train.parquet"
        if junk_bytes is not None:
            path.write_bytes(junk_bytes)
        else:
            n = max((len(v) for v in columns.values()), default=0)
            try:
                table = pa.table({c: pa.array((v * n)[:n] if v else [None] * n) for c, v in columns.items()})
            except (pa.ArrowException, OverflowError, TypeError, ValueError):
                return  # values pyarrow cannot put in one column: no such file exists
            pq.write_table(table, path)
        check_split(task, Path(tmp), path)


def test_redact_survives_a_variable_deleted_while_the_environment_is_read() -> None:
    """MLflow's telemetry thread deletes a variable mid-iteration; a trial failed with KeyError on the GPU."""
    from collections.abc import Mapping

    from orchestrator.base import redact as redact_module

    class Vanishing(Mapping):
        """os.environ as another thread sees it: a key listed, then deleted before it is read (once)."""

        reads = 0

        def __init__(self, data: dict) -> None:
            self.data = data

        def __iter__(self):
            Vanishing.reads += 1
            return iter([*self.data, "_MLFLOW_TELEMETRY_SESSION_ID"] if Vanishing.reads == 1 else self.data)

        def __getitem__(self, key: str) -> str:
            return self.data[key]

        def __len__(self) -> int:
            return len(self.data)

    env = redact_module._environment(Vanishing({"HOME": "/root", "MY_API_TOKEN": "s3cr3t-value-123"}))
    assert env == {"HOME": "/root", "MY_API_TOKEN": "s3cr3t-value-123"}
    assert Vanishing.reads >= 2


def test_the_callbacks_tune_pickles_into_tuner_pkl_hold_no_tracking_password(tmp_path) -> None:
    """tune/tuner.pkl (the sweep's shared storage) held the tracking password through the callbacks' config."""
    from ray import cloudpickle

    from orchestrator.search import tune as tune_module
    from orchestrator.search.sweep_console import ConsoleCallback
    from orchestrator.spec.load import load_config

    cfg = load_config(None, ["name=pk", f"tracking.uri={SECRET_URI}", f"results_dir={tmp_path}"],
                      base={"task": "glue/sst2", "model": "bert-base-uncased"})
    parent = tune_module.ParentRunCallback(cfg, "run123")
    for callback in (parent, ConsoleCallback(cfg, 4)):
        blob = cloudpickle.dumps(callback)
        assert SECRET_PASSWORD.encode() not in blob and SECRET_TOKEN.encode() not in blob
    restored = cloudpickle.loads(cloudpickle.dumps(parent))
    assert restored.cfg.tracking.uri == SECRET_URI and restored.parent_run_id == "run123"  # found, not pickled


def test_mlflow_never_prints_a_run_url_with_its_password(capsys) -> None:
    """MLflow writes 'View run ... at: http://alice:<password>@...' to stdout when a run on a server ends."""
    from mlflow.store.tracking.rest_store import RestStore
    from mlflow.tracking._tracking_service.client import TrackingServiceClient

    import orchestrator.tracking.runs  # noqa: F401 - importing it turns MLflow's URL printing off

    client = TrackingServiceClient(f"http://alice:{SECRET_PASSWORD}@127.0.0.1:9")
    assert isinstance(client.store, RestStore)
    client._log_url("0" * 32)  # would ask the (absent) server for the run, then print its URL
    assert SECRET_PASSWORD not in capsys.readouterr().out
