"""The TypeScript client, built and tested with node's own test runner against the local stack."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from tests.conftest import LocalStack

CLIENT = Path(__file__).resolve().parents[2] / "clients" / "typescript"


def test_typescript_client_against_the_stack(stack: LocalStack) -> None:
    npm = shutil.which("npm")
    assert npm is not None, "npm is required (Node.js 20+)"
    subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund"],
        cwd=CLIENT,
        check=True,
        timeout=300,
        capture_output=True,
    )
    stack.fault("gemini-2.5-flash", slow_stream_ms=40)  # streams long enough to cut and abort
    env = {
        **os.environ,
        "NGX_CHAT_URL": stack.url("chat"),
        "NGX_STREAM_URL": stack.url("stream"),
        "NGX_VERTEX_ADMIN": stack.vertex_admin,
        "NGX_TOKEN": stack.token("ts-client", ttl_s=600),
    }
    result = subprocess.run(
        [npm, "test"], cwd=CLIENT, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "# fail 0" in result.stdout
    assert "# pass 8" in result.stdout
