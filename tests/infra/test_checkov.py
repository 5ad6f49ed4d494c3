"""checkov's security checks on `infra/`: nothing fails, and each skipped check is explained."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from tests.infra.conftest import INFRA, edit

CONFIG = INFRA / ".checkov.yaml"


def scan(checkov: Path, root: Path) -> dict[str, Any]:
    run = subprocess.run(
        [str(checkov), "-d", str(root), "--config-file", str(CONFIG), "--quiet", "-o", "json"],
        capture_output=True,
        text=True,
        cwd=root,
        timeout=300,
    )
    report = json.loads(run.stdout)
    report = report[0] if isinstance(report, list) else report
    assert report["summary"]["parsing_errors"] == 0, run.stderr
    return dict(report)


def failed_ids(report: dict[str, Any]) -> set[str]:
    return {check["check_id"] for check in report.get("results", {}).get("failed_checks", [])}


def test_checkov_finds_nothing_on_infra(checkov: Path) -> None:
    report = scan(checkov, INFRA)
    assert report["summary"]["resource_count"] > 50
    assert failed_ids(report) == set()


def test_every_skipped_check_is_explained() -> None:
    lines = CONFIG.read_text().splitlines()
    skips = [i for i, line in enumerate(lines) if line.strip().startswith("- CKV")]
    assert skips
    for index in skips:
        assert lines[index - 1].strip().startswith("#"), f"{lines[index].strip()} has no reason"


def test_checkov_catches_a_public_backup_bucket(checkov: Path, broken: Path) -> None:
    path = broken / "modules/platform/main.tf"
    backups = 'name                        = "${var.project_id}-ngx-backups-${var.environment}"\n'
    settings = (
        '  location                    = var.region\n  storage_class               = "STANDARD"\n'
    )
    private = '  uniform_bucket_level_access = true\n  public_access_prevention    = "enforced"\n'
    edit(path, backups + settings + private, backups + settings)  # the backup bucket's only
    assert {"CKV_GCP_114", "CKV_GCP_29"} <= failed_ids(scan(checkov, broken))
