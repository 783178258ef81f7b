"""The orchestrator package's layers: imports only go down, there is no import circle, no module is long.

The import graph is read from the source with `ast` (nothing is imported), every import counted: at module
level, inside functions, and under `if TYPE_CHECKING:` (a type a module names is a dependency all the same).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "orchestrator"

# Lowest first. A module may import from its own layer and the layers before it, never from one after it.
# Each name is a subpackage of orchestrator/; ENTRY is every module directly in orchestrator/ (the commands,
# `python -m orchestrator ...`, and the thin modules that keep documented paths such as orchestrator.tune).
ENTRY = "entry"
LAYERS = (
    "base",      # helpers that know nothing of configs or methods: files, typed construction, redaction, shell
    "tasks",     # the task table, data loading, metrics, models
    "config",    # the config dataclasses, constraints, budgets, the records a run writes
    "recipes",   # one recipe per method; reads a Config
    "spec",      # a config meets the recipes: loading, validation, paths, the search space
    "tracking",  # MLflow runs
    "engine",    # one trial or run: preflight, the loop, Ray Train, ASHA inside the trial, per-epoch lines
    "reports",   # what is written from finished trials: fronts, pages, plots, references, leaderboards
    "search",    # the sweep: Ray Tune, the Optuna searcher, the sweep's console and summary
    ENTRY,
)
MAX_LINES = 420


def module_name(path: Path) -> str:
    parts = ["orchestrator", *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The orchestrator modules `path` imports, anywhere in it, each resolved to the module that holds it."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from . import x, from ..pkg import y
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            # `from orchestrator.engine import loop` imports the module orchestrator.engine.loop
            found.update(f"{source}.{a.name}" if f"{source}.{a.name}" in known else source for a in node.names)
    targets = set()
    for target in found:
        if not (target == "orchestrator" or target.startswith("orchestrator.")):
            continue
        while target not in known and "." in target:  # a name inside a module: the module
            target = target.rpartition(".")[0]
        if target != name:
            targets.add(target)
    return targets


def import_graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imports_of(name, path, set(found)) for name, path in found.items()}


def layer_of(module: str) -> str:
    parts = module.split(".")
    if len(parts) > 2 or (len(parts) == 2 and (PACKAGE / parts[1]).is_dir()):
        return parts[1]
    return ENTRY


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component of more than one module (Tarjan), each a list of its modules."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def upward(graph: dict[str, set[str]]) -> list[str]:
    rank = {layer: i for i, layer in enumerate(LAYERS)}
    return [f"{src} ({layer_of(src)}) imports {dst} ({layer_of(dst)})"
            for src, targets in sorted(graph.items()) for dst in sorted(targets)
            if rank[layer_of(dst)] > rank[layer_of(src)]]


def test_every_subpackage_is_a_declared_layer():
    subpackages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    assert subpackages == set(LAYERS) - {ENTRY}, "add the new subpackage to LAYERS in its place (lowest first)"


def test_the_graph_sees_function_level_and_relative_imports(tmp_path):
    (tmp_path / "a.py").write_text("def f():\n    from orchestrator.engine import loop\n    from . import b\n")
    known = {"orchestrator.engine", "orchestrator.engine.loop", "orchestrator.x", "orchestrator.x.b", "orchestrator.x.a"}
    assert imports_of("orchestrator.x.a", tmp_path / "a.py", known) == {"orchestrator.engine.loop", "orchestrator.x.b"}


def test_no_import_circle():
    assert cycles(import_graph()) == []


def test_imports_only_go_down():
    assert upward(import_graph()) == []


def test_an_upward_import_is_caught():
    graph = import_graph()
    graph["orchestrator.config.schema"] = graph["orchestrator.config.schema"] | {"orchestrator.recipes"}
    assert upward(graph) == ["orchestrator.config.schema (config) imports orchestrator.recipes (recipes)"]
    assert cycles(graph) == [["orchestrator.config.schema", "orchestrator.recipes", "orchestrator.recipes.auxiliary",
                              "orchestrator.recipes.base"]]


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_is_long(path):
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(PACKAGE.parent)} has {lines} lines; split it (at most {MAX_LINES})"
