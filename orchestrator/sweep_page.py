"""`python -m orchestrator report SWEEP`: one sweep as a static HTML page (no server, works offline).

    python -m orchestrator report quickstart                 # results/quickstart/report/index.html
    python -m orchestrator report /shared/results/glue-sst2 --out /tmp/sst2-report

The page itself: orchestrator/reports/sweep_page.py.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from orchestrator.base.shell import prog
from orchestrator.base.sweep_folder import SweepFolder
from orchestrator.cli import run_main
from orchestrator.reports.sweep_page import sweep_folder, write_report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=prog("orchestrator.sweep_page"), description=__doc__.split("\n\n")[0])
    parser.add_argument("sweep", metavar="SWEEP", help="a sweep's folder, or its name under --results")
    parser.add_argument("--results", default="results", help="the results folder holding SWEEP (default results)")
    parser.add_argument("--out", default=None, help="where to write the page (default SWEEP/report)")
    args = parser.parse_args(argv)
    results = Path(args.results)
    sweep_dir = sweep_folder(args.sweep, results).resolve()
    out_dir = Path(args.out) if args.out else SweepFolder(sweep_dir).report_dir
    path = write_report(sweep_dir, out_dir.resolve(), sweep_dir.parent)
    print(f"report: {path} (open it in a browser; it needs no server)")
    return 0


if __name__ == "__main__":
    run_main(main, sys.argv[1:])
