"""The offline tools `make infra-tools` puts in `.tools/`: a missing one fails, never skips."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
TOOLS = ROOT / ".tools"


def _tool(relative: str) -> Path:
    path = TOOLS / relative
    if not path.exists():
        pytest.fail(f"{path} is missing: run `make infra-tools`", pytrace=False)
    return path


@pytest.fixture(scope="session")
def hclfmt() -> Path:
    return _tool("bin/hclfmt")


@pytest.fixture(scope="session")
def schema_file() -> Path:
    return _tool("google-provider-6.50.0.json")


@pytest.fixture(scope="session")
def checkov() -> Path:
    return _tool("checkov/bin/checkov")


@pytest.fixture
def broken(tmp_path: Path) -> Path:
    """A copy of `infra/` a test may break."""
    copy = tmp_path / "infra"
    shutil.copytree(INFRA, copy, ignore=shutil.ignore_patterns(".terraform*"))
    return copy


def edit(path: Path, old: str, new: str) -> None:
    """Replace one exact piece of a file; a test whose edit misses fails instead of passing."""
    text = path.read_text()
    assert text.count(old) == 1, f"{old!r} not found exactly once in {path}"
    path.write_text(text.replace(old, new))
