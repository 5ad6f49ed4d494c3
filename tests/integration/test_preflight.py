"""`agentctl preflight`: today's prod defaults fail and name each reason; a complete example
configuration passes, its canary history read live from Firestore (the emulator here)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from google.cloud.firestore_v1.async_client import AsyncClient

from tests.conftest import LocalStack, repo_root

COMPLETE_TFVARS = """
project_id            = "ngx-prod-123"
image                 = "us-central1-docker.pkg.dev/ngx-prod-123/ngx/ngx-agent-functions:abc"
cors_origins          = ["https://app.example.com"]
notification_channels = ["projects/ngx-prod-123/notificationChannels/42"]
"""


def preflight(stack: LocalStack | None, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NGX_")}
    if stack is not None:
        env |= {
            "FIRESTORE_EMULATOR_HOST": stack.firestore_host,
            "NGX_PROJECT_ID": stack.settings.project_id,
        }
    return subprocess.run(
        [sys.executable, "-m", "ops.cli", "preflight", *args],
        cwd=repo_root(),
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def rows(output: str) -> dict[str, tuple[str, str]]:
    found: dict[str, tuple[str, str]] = {}
    for line in output.splitlines()[1:]:
        if not line.strip() or line.startswith("preflight "):
            continue
        item, verdict, detail = line.split(None, 2)
        found.setdefault(item, (verdict, detail))
    return found


def summary(tmp_path: Path, met: bool = True, age_days: int = 2) -> Path:
    finished = datetime.now(UTC) - timedelta(days=age_days)
    path = tmp_path / "summary.json"
    path.write_text(
        json.dumps({"scenario": "normal", "slo": {"met": met}, "finished_at": finished.isoformat()})
    )
    return path


def test_prod_defaults_are_not_ready_and_every_reason_is_named() -> None:
    result = preflight(None, "--env", "prod", "--no-live")
    assert result.returncode == 1, result.stderr
    table = rows(result.stdout)
    failed = {item for item, (verdict, _) in table.items() if verdict == "FAIL"}
    assert failed == {"inputs", "cors", "alerts", "loadtest", "rollback"}
    assert "required variable project_id has no value" in result.stdout
    assert "required variable image has no value" in result.stdout
    assert table["cors"][1].startswith("cors_origins is not set")
    assert table["alerts"][1].startswith("notification_channels is not set")
    assert table["loadtest"][1].startswith("no result given")
    assert table["rollback"][1].startswith("not checked")
    assert result.stdout.rstrip().endswith("preflight prod: NOT READY: 6 of 13 failed")


async def test_a_complete_example_configuration_is_ready(
    stack: LocalStack, firestore_db: Any, tmp_path: Path
) -> None:
    tfvars = tmp_path / "terraform.tfvars"
    tfvars.write_text(COMPLETE_TFVARS)
    rehearsed = datetime.now(UTC) - timedelta(days=10)
    history = {"history": [{"action": "start"}, {"action": "rollback", "at": rehearsed}]}
    prod = AsyncClient(project="ngx-prod-123")  # the checked environment's own project
    await prod.collection("canaries").document("chat").set(history)
    # Another project's rehearsal (here: the stack's) must not count for prod.
    await firestore_db.collection("canaries").document("stream").set(history)
    evidence = ["--loadtest-summary", str(summary(tmp_path))]
    args = ["--env", "prod", "--var-file", str(tfvars), *evidence]
    result = preflight(stack, *args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert {verdict for verdict, _ in rows(result.stdout).values()} == {"PASS"}
    assert f"last rehearsed {rehearsed:%Y-%m-%d}" in result.stdout
    assert result.stdout.rstrip().endswith("preflight prod: READY")

    as_json = json.loads(preflight(stack, *args, "--json").stdout)
    assert as_json["ready"] is True and len(as_json["items"]) == 11
    await prod.collection("canaries").document("chat").delete()
    unrehearsed = rows(preflight(stack, *args).stdout)["rollback"]
    assert unrehearsed == ("FAIL", "no canary rollback or abort in the last 90 days")
    prod.close()  # type: ignore[no-untyped-call]


@pytest.mark.parametrize(
    ("root", "module", "item", "reason"),
    [
        ('cors_origins = ["*"]', "", "cors", "exact https origins"),
        ('cors_origins = ["http://localhost:3000"]', "", "cors", "exact https origins"),
        ("log_retention_days = 7", "", "logging", "< 30"),
        ("", 'extra_env = { chat = { NGX_PARTNER_API_KEY = "k" } }', "secrets", "NGX_PARTNER_"),
        ("", 'extra_env = { chat = { NGX_DAILY_TOKEN_BUDGET = "0" } }', "limits", "unbounded"),
        ("", "memorystore_tls = false", "memorystore", "memorystore_tls"),
        ("", "backup_keep_days = 3", "backups", "backup_keep_days = 3 < 7"),
    ],
)
def test_each_unmet_item_is_named(
    tmp_path: Path, root: str, module: str, item: str, reason: str
) -> None:
    """The complete example with one thing changed: a root variable (tfvars) or, for inputs the
    environment does not expose, an argument of its platform module (a copy of infra/)."""
    infra = tmp_path / "infra"
    shutil.copytree(repo_root() / "infra", infra)
    main = infra / "envs/prod/main.tf"
    if module:
        main.write_text(main.read_text().replace("  backup_keep_days      = 30", f"  {module}"))
    values = tmp_path / "terraform.tfvars"
    values.write_text(COMPLETE_TFVARS + root + "\n")
    args = ["--infra", str(infra), "--var-file", str(values), "--no-live"]
    result = preflight(None, "--env", "prod", *args)
    verdict, detail = rows(result.stdout)[item]
    assert result.returncode == 1 and verdict == "FAIL" and reason in detail, result.stdout


def test_an_unreadable_input_is_one_clear_line(tmp_path: Path) -> None:
    missing = preflight(None, "--env", "prod", "--var-file", str(tmp_path / "nope.tfvars"))
    assert missing.returncode == 2
    assert missing.stderr.strip().endswith("nope.tfvars: no such file")
    broken = tmp_path / "broken.tfvars"
    broken.write_text("cors_origins = [\n")
    bad = preflight(None, "--env", "prod", "--var-file", str(broken))
    assert bad.returncode == 2 and "not valid HCL" in bad.stderr
    stale = summary(tmp_path, age_days=45)
    old = preflight(None, "--env", "staging", "--no-live", "--loadtest-summary", str(stale))
    assert "45 days old" in rows(old.stdout)["loadtest"][1]
