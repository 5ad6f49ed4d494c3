"""The app developers' guide stays complete: every error code the API can answer is in its table."""

from __future__ import annotations

import re
from pathlib import Path

from shared import errors

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "app-developers.md"


def every_error() -> dict[str, int]:
    """Each AppError's code and status, subclasses of subclasses included."""
    found: dict[str, int] = {}
    pending: list[type[errors.AppError]] = [errors.AppError]
    while pending:
        cls = pending.pop()
        found[cls.code] = cls.status
        pending.extend(cls.__subclasses__())
    return found


def test_the_error_table_lists_every_code_with_its_status() -> None:
    rows = dict(re.findall(r"^\| `([a-z_]+)` \| (\d{3}) \|", GUIDE.read_text(), re.MULTILINE))
    expected = {code: str(status) for code, status in every_error().items()}
    assert rows == expected
