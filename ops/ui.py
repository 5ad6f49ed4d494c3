"""Terminal conventions shared by agentctl's commands: progress on interactive terminals, and the
one dry-run convention of commands that change something."""

from __future__ import annotations

import sys
from typing import Any


class ProgressLine:
    """Progress of a long operation on one line that redraws, when stderr is a terminal; silent
    otherwise (CI logs and files get the command's final report instead)."""

    def __init__(self) -> None:
        self.live = sys.stderr.isatty()
        self.used = False

    def __call__(self, what: str, count: int, unit: str = "documents") -> None:
        if self.live:
            self.used = True
            print(f"\r{what}: {count:,} {unit}", end="", file=sys.stderr, flush=True)

    def close(self) -> None:
        """End the line, if one was drawn."""
        if self.used:
            print(file=sys.stderr)
            self.used = False


def add_yes(parser: Any, does: str) -> None:
    """The one dry-run convention of destructive commands: without ``--yes`` they only report
    what they would do and change nothing."""
    parser.add_argument(
        "--yes", action="store_true", help=f"{does}; without it, a dry run that changes nothing"
    )


DRY_RUN_NOTE = "dry run: nothing was changed; run again with --yes"
