"""Terminal output shared by long-running commands: progress that redraws on a terminal and
prints sparse, whole lines when the output is a file or a CI log."""

from __future__ import annotations

import sys
import time
from typing import Any

_last_printed: dict[str, float] = {}
EVERY_S = 5.0  # one line per task this often when the output is not a terminal


def progress_line(task: str, detail: str, final: bool = False) -> str | None:
    """The line to show for ``task`` now, or ``None`` when nothing should be printed.

    On a terminal the line starts with a carriage return, so it redraws in place; elsewhere a line
    is printed at most every `EVERY_S` seconds per task, and always for the final state.
    """
    if sys.stderr.isatty():
        return f"\r{task}: {detail}" + ("\n" if final else "")
    now = time.monotonic()
    if final or now - _last_printed.get(task, -EVERY_S) >= EVERY_S:
        _last_printed[task] = now
        return f"{task}: {detail}"
    return None


def add_yes(parser: Any, does: str) -> None:
    """The one dry-run convention of destructive commands: without ``--yes`` they only report
    what they would do and change nothing."""
    parser.add_argument(
        "--yes", action="store_true", help=f"{does}; without it, a dry run that changes nothing"
    )


DRY_RUN_NOTE = "dry run: nothing was changed; run again with --yes"
