"""``agentctl tools check``: an operator validates a tools file before deploying it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def agentctl(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("NGX_")}
    return subprocess.run(
        [sys.executable, "-m", "ops.cli", *args],
        cwd=ROOT,
        env={**clean, "NGX_ENVIRONMENT": "test", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_stacks_tools_file_checks_out(tmp_path: Path) -> None:
    # The stack's file, aimed at a public host as a deployment's would be.
    source = (ROOT / "emulator" / "tools.toml").read_text()
    deployed = source.replace("@DEMO_URL@", "https://orders.example.com")
    path = tmp_path / "tools.toml"
    path.write_text(deployed.replace('["127.0.0.1"]', '["orders.example.com"]'))
    listed = agentctl("tools", "check", "--json", str(path))
    assert listed.returncode == 0, listed.stderr
    tools = {t["name"]: t for t in json.loads(listed.stdout)}
    assert tools["order_status"]["cache_ttl_s"] == 30 and not tools["order_status"]["confirm"]
    assert tools["cancel_order"]["confirm"] and tools["cancel_order"]["scope"] == "tools:orders"
    strict = agentctl("tools", "check", "--credentials", str(path))
    assert strict.returncode == 1
    assert "NGX_DEMO_API_TOKEN is unset" in strict.stderr


def test_a_bad_file_is_reported_with_status_1(tmp_path: Path) -> None:
    path = tmp_path / "tools.toml"
    path.write_text(
        '[tools.x]\nkind = "http"\ndescription = "d"\nurl = "http://10.0.0.1/"\n'
        'allow_hosts = ["*"]\n'
    )
    done = agentctl("tools", "check", str(path))
    assert done.returncode == 1
    assert "private address" in done.stderr


def test_no_file_is_a_usage_error() -> None:
    assert agentctl("tools", "check").returncode == 2
