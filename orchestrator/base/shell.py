"""Commands this tool prints for a person to paste into their shell.

That shell is the one the README's first command ran in: no virtual environment activated, so a bare
`python` or `pip` is another interpreter without this project's packages. Every printed command names the
interpreter that is running (`.venv/bin/python` when it lies under the working directory) and every path
as seen from the working directory, quoted for a POSIX shell.
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

# The optional extra `dashboard` of pyproject.toml (tests/test_newcomer.py checks they agree).
DASHBOARD_REQUIREMENT = "optuna-dashboard>=0.21,<0.22"


def relative_path(path: str | os.PathLike[str], cwd: str | os.PathLike[str] | None = None) -> str:
    """`path` relative to `cwd` (default: the working directory) when it lies inside it, else absolute."""
    absolute = Path(os.path.abspath(path))
    try:
        return str(absolute.relative_to(Path(os.path.abspath(cwd or os.getcwd()))))
    except ValueError:
        return str(absolute)


def shell_path(path: str | os.PathLike[str], cwd: str | os.PathLike[str] | None = None) -> str:
    """relative_path, quoted; a bare file name gets `./` so that a shell runs it instead of searching PATH."""
    shown = relative_path(path, cwd)
    return shlex.quote(shown if "/" in shown or shown == "." else f"./{shown}")


def python_command() -> str:
    """The running interpreter as a command (sys.executable, not resolved: a venv's python is a symlink)."""
    return shell_path(sys.executable)


def module_command(module: str, *args: str | os.PathLike[str]) -> str:
    """`<python> -m MODULE ARGS...`, each argument quoted."""
    return " ".join([python_command(), "-m", module, *(shlex.quote(str(a)) for a in args)])


def script_command(name: str) -> str:
    """A console script installed beside the running interpreter (the same venv's bin/)."""
    return shell_path(Path(sys.executable).parent / name)


def dashboard_command(storage_url: str) -> str:
    """Install optuna-dashboard into this interpreter's environment, then open the study's database.
    A sqlite URL is given relative to the working directory (sqlite:///results/x/optuna.db)."""
    prefix = "sqlite:///"
    if storage_url.startswith(prefix):  # sqlite:///relative/path, or sqlite:////absolute/path
        storage_url = prefix + relative_path(storage_url[len(prefix):])
    url = shlex.quote(storage_url)
    install = f"{python_command()} -m pip install {shlex.quote(DASHBOARD_REQUIREMENT)}"
    return f"{install} && {script_command('optuna-dashboard')} {url}"


def prog(module: str) -> str:
    """A parser's usage name: `python -m orchestrator sweep` when the one entry point (orchestrator/__main__.py,
    which puts that in argv[0]) dispatched here, else the module's own `python -m orchestrator.sweep`."""
    if sys.argv and sys.argv[0].startswith("python -m orchestrator "):
        return sys.argv[0]
    return f"python -m {module}"
