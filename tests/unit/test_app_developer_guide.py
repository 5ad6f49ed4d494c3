"""The app developers' guide stays complete: every error code the API can answer is in its table."""

from __future__ import annotations

import re
from pathlib import Path

from shared import errors

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "app-developers.md"


def test_the_error_table_lists_every_code_with_its_status() -> None:
    rows = dict(re.findall(r"^\| `([a-z_]+)` \| (\d{3}) \|", GUIDE.read_text(), re.MULTILINE))
    expected = {kind.code: str(kind.status) for kind in errors.catalogue()}
    assert rows == expected
