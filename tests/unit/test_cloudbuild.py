"""`cloudbuild.yaml`: test → build → push → revisions without traffic → canary, in that order."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from ops.cli import build_parser, main
from shared import registry

ROOT = Path(__file__).resolve().parents[2]
BUILD = yaml.safe_load((ROOT / "cloudbuild.yaml").read_text())
STEPS = {step["id"]: step for step in BUILD["steps"]}
REGISTRY = "${_REGION}-docker.pkg.dev/${_DEPLOY_PROJECT}/${_REPOSITORY}"
IMAGE = f"{REGISTRY}/ngx-agent-functions:${{COMMIT_SHA}}"
OPS_IMAGE = f"{REGISTRY}/ngx-ops:${{COMMIT_SHA}}"
BUILT_IN = {"PROJECT_ID", "COMMIT_SHA", "SHORT_SHA", "BUILD_ID", "BRANCH_NAME", "LOCATION"}


def script(step: dict[str, Any]) -> str:
    assert step["entrypoint"] in ("bash", "sh") and step["args"][0] == "-c"
    return str(step["args"][1])


def test_steps_run_in_order() -> None:
    assert list(STEPS) == [
        "test",
        "build",
        "build-ops",
        "push",
        "functions",
        "migrate",
        "deploy",
        "release-scheduled",
        "canary-chat",
        "canary-stream",
        "loadtest",
    ]
    seen: set[str] = set()
    for step_id, step in STEPS.items():
        if step_id != "test":
            assert step.get("waitFor"), f"{step_id} would start at once, before the tests pass"
        assert set(step.get("waitFor", [])) <= seen, f"{step_id} waits for a later step"
        seen.add(step_id)
    assert STEPS["build"]["waitFor"] == STEPS["build-ops"]["waitFor"] == ["test"]
    assert STEPS["push"]["waitFor"] == ["build", "build-ops"]


def test_tests_run_with_the_emulators_as_ci_does() -> None:
    step = STEPS["test"]
    assert step["name"] == "gcr.io/google.com/cloudsdktool/google-cloud-cli:emulators"
    assert "CI=true" in step["env"] and script(step).endswith("bash .ci/run")


def test_both_images_are_built_from_their_targets_tagged_and_pushed() -> None:
    build, ops, push = STEPS["build"], STEPS["build-ops"], STEPS["push"]
    assert build["name"] == ops["name"] == push["name"] == "gcr.io/cloud-builders/docker"
    assert build["args"] == ["build", "--target=runtime", f"--tag={IMAGE}", "."]
    assert ops["args"] == ["build", "--target=ops", f"--tag={OPS_IMAGE}", "."]
    assert script(push) == f"docker push {IMAGE} && docker push {OPS_IMAGE}"
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert " AS runtime\n" in dockerfile and " AS ops\n" in dockerfile


def listed(flag: str, capsys: pytest.CaptureFixture[str]) -> list[str]:
    """What `agentctl functions FLAG` prints, as the pipeline's functions step runs it."""
    assert main(["functions", flag]) == 0
    return capsys.readouterr().out.split()


def test_the_service_lists_come_from_the_registry(capsys: pytest.CaptureFixture[str]) -> None:
    step = STEPS["functions"]
    assert step["name"] == OPS_IMAGE and step["waitFor"] == ["push"]
    assert script(step) == (
        "python -m ops.cli functions --names > /workspace/services.txt && "
        "python -m ops.cli functions --scheduled > /workspace/scheduled.txt"
    )
    assert listed("--names", capsys) == [spec.service for spec in registry.FUNCTIONS]
    assert listed("--scheduled", capsys) == [
        spec.service for spec in registry.FUNCTIONS if spec.access != "public"
    ]


def test_each_service_gets_a_tagged_revision_without_traffic() -> None:
    step = STEPS["deploy"]
    assert step["name"] == "gcr.io/google.com/cloudsdktool/cloud-sdk:slim"
    assert step["waitFor"] == ["functions"]
    text = script(step)
    assert text.startswith("for service in $$(cat /workspace/services.txt); do")
    deploy = shlex.split(text.split("(", 2)[2].split("&&")[0])
    assert deploy[:4] == ["gcloud", "run", "deploy", "ngx-$$service"]
    assert f"--image={IMAGE}" in deploy and "--no-traffic" in deploy
    assert "--tag=c-${SHORT_SHA}" in deploy
    assert "> /workspace/$$service.revision) &" in text
    # Deploys run in parallel; any failure fails the step.
    assert text.endswith("exit $$failed") and "wait $$job || failed=1" in text


def test_pending_migrations_run_from_the_ops_image_before_traffic_moves() -> None:
    step = STEPS["migrate"]
    assert step["name"] == OPS_IMAGE and step["waitFor"] == ["push"]
    words = shlex.split(script(step))
    assert words[:4] == ["exec", "python", "-m", "ops.cli"]
    args = build_parser().parse_args(words[4:])
    assert (args.command, args.action, args.yes, args.wait) == ("migrate", "up", True, True)
    moves = [s for s in STEPS.values() if s["id"] == "release-scheduled" or "canary" in s["id"]]
    assert moves and all("migrate" in s["waitFor"] for s in moves)
    assert "NGX_PROJECT_ID=${_DEPLOY_PROJECT}" in step["env"]


def test_staging_runs_the_load_test_job_from_the_new_ops_image() -> None:
    step = STEPS["loadtest"]
    assert step["waitFor"] == ["canary-chat", "canary-stream"]
    text = script(step)
    assert text.startswith('if [ "${_ENV}" != staging ]; then')
    update, execute = text.split("; fi;", 1)[1].split("&&")
    assert shlex.split(update)[:4] == ["gcloud", "run", "jobs", "update"]
    assert f"--image={OPS_IMAGE}" in shlex.split(update)
    assert shlex.split(execute)[:5] == ["gcloud", "run", "jobs", "execute", "ngx-loadtest-${_ENV}"]
    assert "--wait" in shlex.split(execute)  # a missed SLO fails the step
    loadtest = (ROOT / "infra/modules/loadtest/main.tf").read_text()
    assert 'name = "ngx-loadtest-${var.environment}"' in loadtest


def test_service_names_match_terraform() -> None:
    module = (ROOT / "infra/modules/cloud_run_service/main.tf").read_text()
    assert 'service_name = "ngx-${replace(var.name, "_", "-")}"' in module


def canary_args(step_id: str) -> Any:
    """The canary command line as the step runs it, parsed by agentctl's own parser."""
    text = script(STEPS[step_id]).replace("$$(cat /workspace/", "REV(")
    values = {**BUILD["substitutions"], "SHORT_SHA": "abc1234"}
    text = re.sub(r"\$\{(\w+)\}", lambda m: str(values[m.group(1)]), text)
    text = re.sub(r"REV\((\w+)\.revision\)", r"ngx-\1-00002-xyz", text)
    words = shlex.split(text)
    assert words[:4] == ["exec", "python", "-m", "ops.cli"]
    return build_parser().parse_args(words[4:])


def test_canaries_run_from_the_new_image_and_parse() -> None:
    for service in ("chat", "stream"):
        step = STEPS[f"canary-{service}"]
        assert step["name"] == OPS_IMAGE and step["waitFor"] == ["deploy", "migrate"]
        args = canary_args(f"canary-{service}")
        assert (args.command, args.action, args.service) == ("canary", "start", service)
        assert args.revision == f"ngx-{service}-00002-xyz" and args.tag == "c-abc1234"
        assert (args.steps, args.bake) == ("20,50,100", "30m,60m")
        assert not args.no_wait and args.yes and args.supersede
        assert args.max_wait == "3h" and args.min_requests == 100
        # A stream's request latency is the stream's length: no p95 gate, the model KPIs instead.
        assert (args.no_p95_gate, args.kpis) == (service == "stream", service == "stream")
        assert "NGX_PROJECT_ID=${_DEPLOY_PROJECT}" in step["env"]


def test_scheduled_functions_move_to_the_new_revision() -> None:
    step = STEPS["release-scheduled"]
    assert step["waitFor"] == ["deploy", "migrate"]
    assert script(step).startswith("for service in $$(cat /workspace/scheduled.txt); do")
    assert "update-traffic ngx-$$service" in script(step)
    assert "--to-tags=c-${SHORT_SHA}=100" in script(step)


def test_scripts_escape_their_own_dollars() -> None:
    """Cloud Build reads `$NAME` as a substitution: shell variables must be written `$$NAME`."""
    for step in BUILD["steps"]:
        for arg in step.get("args", []):
            bare = re.findall(r"(?<!\$)\$(?!\$|\{)\(?\w*", re.sub(r"\$\$", "", str(arg)))
            assert bare == [], f"{step['id']}: {bare}"


def test_substitutions_are_declared_and_used() -> None:
    text = (ROOT / "cloudbuild.yaml").read_text()
    used = set(re.findall(r"(?<!\$)\$\{(\w+)\}", text))
    declared = set(BUILD["substitutions"])
    assert {"_DEPLOY_PROJECT", "_REGION", "_ENV"} <= declared
    assert used - BUILT_IN == declared
    assert BUILD["options"]["logging"] == "CLOUD_LOGGING_ONLY"
