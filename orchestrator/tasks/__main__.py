"""python -m orchestrator.tasks describe TASK [--data-dir DIR] [--json] (see orchestrator.tasks.cli)."""

import sys

from orchestrator.tasks.cli import main

if __name__ == "__main__":
    sys.exit(main())
