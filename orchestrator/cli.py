"""What every command-line module shares: the config options and how errors reach the user."""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Callable

from orchestrator.base.redact import redact
from orchestrator.config.schema import Config, ConfigError
from orchestrator.spec.load import load_config
from orchestrator.tasks import DataError  # the registry alone: no torch


def add_config_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, metavar="FILE",
                        help="YAML file describing the run or sweep (see search_spaces/)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override one dotted key, typed like the field it sets, e.g. "
                             "--set method.rank=16 --set train.max_examples=2000 (repeatable)")
    parser.add_argument("--verbose", action="store_true",
                        help="show Ray's and transformers' own output (worker logs, Tune's status tables, load "
                             "reports) besides this tool's lines")


def config_from_args(args: argparse.Namespace) -> Config:
    from orchestrator.engine import console

    console.set_verbose(bool(getattr(args, "verbose", False)))
    return load_config(args.config, args.overrides)


MAX_LINE = 500  # characters of one error line: a 10,000-tab header echoed whole made a 40 KB line


def bounded(text: str) -> str:
    """`text` with every line longer than MAX_LINE cut, saying how much was cut: whatever a message quotes
    from a hostile file, the line that names the file and the fix stays readable."""
    def cut(line: str) -> str:
        if len(line) <= MAX_LINE:
            return line
        return f"{line[:MAX_LINE]} ... ({len(line) - MAX_LINE:,} more characters cut)"

    return "\n".join(cut(line) for line in text.split("\n"))


def run_main(main: Callable[[list[str] | None], int], argv: list[str] | None = None) -> None:
    """Run a CLI entry point: bad input (config or data) ends with its message on stderr and exit status 2.

    What reaches stderr is redacted (passwords and tokens in URIs, secret environment values); an
    unexpected error still shows its traceback, redacted, with exit status 1.
    """
    try:
        code = main(argv)
    except ConfigError as exc:
        print(bounded(redact(f"error: {exc}")), file=sys.stderr)
        code = 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        code = 130
    except DataError as exc:
        print(bounded(redact(f"error: {exc}")), file=sys.stderr)
        code = 2
    except Exception:
        print(bounded(redact(traceback.format_exc())), end="", file=sys.stderr)
        code = 1
    sys.exit(code)
