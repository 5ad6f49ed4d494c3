"""Builds of the TypeScript client and the playground for the tests that use them (as `make
playground` builds them): the client's types are generated from docs/openapi.json first."""

from __future__ import annotations

import functools
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CLIENT = ROOT / "clients" / "typescript"
PLAYGROUND = ROOT / "playground"


def npm() -> str:
    found = shutil.which("npm")
    assert found is not None, "npm is required (Node.js 20+)"
    return found


@functools.cache  # once per test session: the lock file does not change during it
def install_client() -> None:
    """The client's locked development dependencies (openapi-typescript, typescript)."""
    done = subprocess.run(
        [npm(), "ci", "--no-audit", "--no-fund"],
        cwd=CLIENT,
        timeout=300,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]


@functools.cache  # once per test session, for every test that needs the page or the client
def build_playground() -> None:
    """The client (types generated, compiled), then the page that imports it."""
    install_client()
    for argv, cwd in (
        ([npm(), "run", "build"], CLIENT),
        ([str(CLIENT / "node_modules" / ".bin" / "tsc"), "-p", "tsconfig.json"], PLAYGROUND),
    ):
        result = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
