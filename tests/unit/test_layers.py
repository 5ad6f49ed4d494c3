"""The layering contracts (pyproject's ``[tool.importlinter]``) hold, and each one catches the
import it forbids: a copy of the tree with that import added fails ``lint-imports``."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import repo_root

PACKAGES = ("shared", "ops", "emulator", "functions")
LINT = Path(sys.executable).parent / "lint-imports"


def lint(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT), "--config", str(root / "pyproject.toml"), "--no-cache"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
    )


def tree_copy(tmp_path: Path) -> Path:
    """The packages' Python files and the project file, nothing else."""
    for package in PACKAGES:
        shutil.copytree(
            repo_root() / package,
            tmp_path / package,
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "node_modules", "*.json"),
        )
    shutil.copy(repo_root() / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_the_tree_keeps_every_contract() -> None:
    result = lint(repo_root())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("shared/llm/policy.py", "from ops.canary import plan", "The runtime imports neither"),
        ("shared/chat.py", "import emulator.devtokens", "The runtime imports neither"),
        ("functions/chat/main.py", "from ops import keys", "Functions import the runtime only"),
        ("ops/canary/rollout.py", "from emulator import stack", "Operations reach development"),
    ],
)
def test_a_forbidden_import_breaks_its_contract(
    tmp_path: Path, module: str, line: str, contract: str
) -> None:
    root = tree_copy(tmp_path)
    path = root / module
    # Inside a function, as a lazy import would be: the contract still sees it.
    path.write_text(path.read_text() + f"\n\ndef _sneaky() -> None:\n    {line}  # noqa\n")
    result = lint(root)
    assert result.returncode != 0
    assert f"{contract}" in result.stdout and "BROKEN" in result.stdout
    assert module.removesuffix(".py").replace("/", ".") in result.stdout
