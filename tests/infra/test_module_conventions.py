"""Terraform modules follow the registry's conventions (terraform-google-modules): pinned
providers, every variable typed and described, constrained values validated, outputs described,
and a README whose inputs and outputs are the `.tf` files' own (it cannot drift)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from ops.terraform import blocks, literal, parse
from tests.infra import module_docs

MODULES = sorted(p for p in module_docs.MODULES.iterdir() if p.is_dir())
# Variables whose values are constrained: they must carry a validation block.
CONSTRAINED = re.compile(
    r"^(region|environment|name|cpu|memory|.*_ratio|.*_goal|.*node_type"
    r"|cors_origins|subnet_cidr|.*retention_days|concurrency|timeout_s"
    r"|min_instances|max_instances|shard_count|attempt_deadline|service_uri)$"
)


def problems(module: Path) -> list[str]:
    found = []
    versions = module / "versions.tf"
    if not versions.exists():
        return [f"{module.name}: no versions.tf"]
    terraform = literal(parse(versions).get("terraform", [{}])[0])
    google = terraform.get("required_providers", [{}])[0].get("google", {})
    if google.get("source") != "hashicorp/google" or not google.get("version"):
        found.append(f"{module.name}: versions.tf must pin hashicorp/google")
    if not terraform.get("required_version"):
        found.append(f"{module.name}: versions.tf must state required_version")
    for _, _, name, spec in blocks(module, "variable"):
        for key in ("type", "description"):
            if key not in spec:
                found.append(f"{module.name}: variable {name} has no {key}")
        if (
            CONSTRAINED.match(name)
            and "validation" not in spec
            and name not in ("name",) + (() if module.name == "cloud_run_service" else ("name",))
        ):
            found.append(f"{module.name}: variable {name} is constrained but not validated")
    for _, _, name, spec in blocks(module, "output"):
        if "description" not in spec:
            found.append(f"{module.name}: output {name} has no description")
    readme = module / "README.md"
    if not readme.exists() or readme.read_text() != module_docs.readme(module):
        found.append(f"{module.name}: README.md is stale: python -m tests.infra.module_docs")
    return found


@pytest.mark.parametrize("module", MODULES, ids=lambda p: p.name)
def test_each_module_follows_the_conventions(module: Path) -> None:
    assert problems(module) == []


def _broken(tmp_path: Path, module: str) -> Path:
    copy = tmp_path / module
    shutil.copytree(module_docs.MODULES / module, copy)
    return copy


def test_a_changed_description_makes_the_readme_stale(tmp_path: Path) -> None:
    copy = _broken(tmp_path, "firestore")
    variables = copy / "variables.tf"
    variables.write_text(variables.read_text().replace("Days the daily", "Weeks the daily"))
    assert problems(copy) == ["firestore: README.md is stale: python -m tests.infra.module_docs"]


def test_an_undescribed_variable_and_a_missing_validation_are_reported(tmp_path: Path) -> None:
    copy = _broken(tmp_path, "cache")
    variables = copy / "variables.tf"
    text = variables.read_text()
    text = text.replace(
        '  description = "Shards of the instance (one without cluster mode)."\n', ""
    )
    text = re.sub(
        r"  validation \{\n    condition     = var.shard_count.*?\n  \}\n", "", text, flags=re.S
    )
    variables.write_text(text)
    (copy / "versions.tf").unlink()
    assert problems(copy) == ["cache: no versions.tf"]
    shutil.copy(module_docs.MODULES / "cache" / "versions.tf", copy / "versions.tf")
    assert problems(copy)[:2] == [
        "cache: variable shard_count has no description",
        "cache: variable shard_count is constrained but not validated",
    ]
