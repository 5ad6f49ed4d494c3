"""The backup function over HTTP: who may call it, bad requests, and agentctl backup."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from emulator import devtokens
from emulator.stack import ROOT
from tests.conftest import LocalStack


def call(stack: LocalStack, body: Any, email: str | None = None, **token: Any) -> httpx.Response:
    url = stack.url("backup")
    headers = {}
    if email is not None:
        audience = token.pop("audience", url)
        signed = devtokens.invoker_token(stack.settings, email, audience, **token)
        headers["Authorization"] = f"Bearer {signed}"
    return httpx.post(url + "/", json=body, headers=headers, timeout=60)


def scheduler(stack: LocalStack) -> str:
    return devtokens.scheduler_account(stack.settings)


def operator(stack: LocalStack) -> str:
    return devtokens.operator_account(stack.settings)


def sink_files(stack: LocalStack) -> list[Path]:
    root = stack.settings.stack_dir / "backups"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def backup_records(stack: LocalStack) -> list[Any]:
    project = stack.settings.project_id
    url = (
        f"http://{stack.firestore_host}/v1/projects/{project}/databases/(default)/documents/backups"
    )
    documents: list[Any] = (
        httpx.get(url, headers={"Authorization": "Bearer owner"}, timeout=10)
        .json()
        .get("documents", [])
    )
    return documents


@pytest.fixture
def clean_sink(stack: LocalStack) -> LocalStack:
    for path in sink_files(stack):
        path.unlink()
    return stack


def test_the_scheduler_runs_lists_and_verifies_a_backup(clean_sink: LocalStack) -> None:
    stack = clean_sink
    httpx.post(
        f"{stack.url('chat')}/v1/chat",
        json={"message": "keep me"},
        headers=stack.auth(),
        timeout=30,
    ).raise_for_status()
    ran = call(stack, {"action": "run"}, scheduler(stack))
    assert ran.status_code == 200, ran.text
    report = ran.json()
    assert report["collections"]["conversations"] == 3  # the conversation and its two messages
    assert report["created_by"] == scheduler(stack)
    listed = call(stack, {"action": "list"}, scheduler(stack)).json()
    assert [b["backup_id"] for b in listed["backups"]] == [report["backup_id"]]
    verified = call(stack, {"action": "verify"}, scheduler(stack)).json()
    assert (verified["backup_id"], verified["ok"]) == (report["backup_id"], True)


def test_restore_is_for_operators_never_the_scheduler(clean_sink: LocalStack) -> None:
    stack = clean_sink
    backup_id = call(stack, {"action": "run"}, scheduler(stack)).json()["backup_id"]
    body = {"action": "restore", "backup_id": backup_id, "dry_run": True}
    refused = call(stack, body, scheduler(stack))
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "permission_denied"
    allowed = call(stack, body, operator(stack))
    assert allowed.status_code == 200, allowed.text
    assert allowed.json()["dry_run"] is True


@pytest.mark.parametrize(
    ("token", "status", "code"),
    [
        (None, 401, "unauthenticated"),
        ({"audience": "https://another-service.run.app"}, 401, "unauthenticated"),
        ({"ttl_s": -120}, 401, "unauthenticated"),
        ({"email": "intruder@example.iam.gserviceaccount.com"}, 403, "permission_denied"),
    ],
)
def test_callers_without_a_good_token_are_refused_and_nothing_is_written(
    clean_sink: LocalStack, token: dict[str, Any] | None, status: int, code: str
) -> None:
    stack = clean_sink
    if token is None:
        response = call(stack, {"action": "run"})
    else:
        email = token.pop("email", scheduler(stack))
        response = call(stack, {"action": "run"}, email, **token)
    assert response.status_code == status
    error = response.json()["error"]
    assert error["code"] == code and error["request_id"]
    assert sink_files(stack) == [] and backup_records(stack) == []


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"action": "explode"}, 422, "action"),
        ({}, 422, "action"),
        ([], 422, "body"),
        ({"action": "verify"}, 404, None),
        ({"action": "verify", "backup_id": "yesterday"}, 422, "verify.backup_id"),
        ({"action": "verify", "backup_id": "20200101T000000.000Z-abcdef"}, 404, None),
        ({"action": "run", "sink": "s3://bucket/x"}, 422, "run.sink"),
        ({"action": "run", "sink": "file://relative/dir"}, 422, "run.sink"),
        ({"action": "run", "sink": "gs://NO/x"}, 422, "run.sink"),
        # Found by a security review: a caller-chosen destination copied the whole database
        # (API keys included) anywhere, listed a system folder, pruned outside the backup area.
        ({"action": "run", "sink": "file:///any/path"}, 422, "run.sink"),
        ({"action": "list", "sink": "file:///etc"}, 422, "list.sink"),
        ({"action": "prune", "sink": "file:///tmp/elsewhere"}, 422, "prune.sink"),
        ({"action": "run", "sink": "gs://any-bucket/x"}, 422, "run.sink"),
        ({"action": "run", "sink": "archive"}, 422, "sink"),  # a name, but not configured
        ({"action": "run", "collections": ["a/b"]}, 422, "run.collections.0"),
        ({"action": "run", "surprise": 1}, 422, "run.surprise"),
        ({"action": "prune", "keep_last": 0}, 422, "prune.keep_last"),
    ],
)
def test_bad_requests_get_a_clear_error_and_nothing_is_written(
    clean_sink: LocalStack, body: dict[str, Any], status: int, field: str | None
) -> None:
    stack = clean_sink
    response = call(stack, body, scheduler(stack))
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["request_id"] and error["message"]
    if field is not None:
        assert field in [d.get("field") for d in error["details"]], error
    assert sink_files(stack) == [] and backup_records(stack) == []


def agentctl(stack: LocalStack, *args: str) -> subprocess.CompletedProcess[str]:
    return stack.agentctl("backup", *args)


def test_agentctl_backup_restore_is_a_dry_run_unless_yes(clean_sink: LocalStack) -> None:
    stack = clean_sink
    httpx.post(
        f"{stack.url('chat')}/v1/chat", json={"message": "hello"}, headers=stack.auth(), timeout=30
    ).raise_for_status()
    ran = agentctl(stack, "run", "--json")
    assert ran.returncode == 0, ran.stderr
    report = json.loads(ran.stdout)
    backup_id, documents = report["backup_id"], report["documents"]
    assert report["collections"]["conversations"] == 3
    listed = agentctl(stack, "list")
    assert backup_id in listed.stdout and "complete" in listed.stdout
    stack.reset()
    dry = agentctl(stack, "restore", backup_id)
    assert dry.returncode == 0 and f"dry run: would restore {documents} documents" in dry.stdout
    assert backup_records(stack) == []
    restored = agentctl(stack, "restore", backup_id, "--yes", "--json")
    assert restored.returncode == 0, restored.stderr
    assert json.loads(restored.stdout)["written"] == documents
    missing = agentctl(stack, "verify", "20200101T000000.000Z-abcdef")
    assert missing.returncode == 1 and "not found" in missing.stderr


def test_a_cloud_storage_destination_without_credentials_is_a_clear_503(tmp_path: Path) -> None:
    """Found by a security review: DefaultCredentialsError surfaced as a 500."""
    probe = (
        "import asyncio\n"
        "from shared import errors\n"
        "from shared.backup.jobs import Backups\n"
        "from shared.settings import load_settings\n"
        "s = load_settings(environment='test', backup_sink='gs://ngx-backups/x')\n"
        "try:\n"
        "    asyncio.run(Backups(s).list())\n"
        "except errors.AppError as e:\n"
        "    print(e.status, e.code, e.message)\n"
    )
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("GOOGLE_APPLICATION_CREDENTIALS", "STORAGE_EMULATOR_HOST")
    }
    # No credentials anywhere, and the metadata server probe stays on loopback.
    env |= {
        "CLOUDSDK_CONFIG": str(tmp_path),
        "NO_GCE_CHECK": "true",
        "GCE_METADATA_HOST": "127.0.0.1:9",
        "GCE_METADATA_IP": "127.0.0.1:9",
    }
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.stdout.startswith("503 unavailable the backup destination gs://ngx-backups/x"), (
        result.stdout + result.stderr
    )
    assert "no Google credentials" in result.stdout
