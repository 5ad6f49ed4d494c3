"""`infra/` passes the offline checks, and each check catches the mistake it exists for."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from ops import terraform
from tests.infra import checks
from tests.infra.conftest import INFRA, edit


@pytest.fixture(scope="session")
def schema(schema_file: Path) -> dict[str, Any]:
    return checks.load_schema(schema_file)


def test_schema_covers_the_resources_used(schema: dict[str, Any]) -> None:
    used = {rtype for _, rtype, _, _ in terraform.blocks(INFRA, "resource")}
    assert len(schema["resource"]) > 1000
    assert "google_cloud_run_v2_service" in used and used <= set(schema["resource"])


def test_infra_is_formatted(hclfmt: Path) -> None:
    assert checks.check_format(INFRA, hclfmt) == []


def test_infra_matches_the_provider_schema(schema: dict[str, Any]) -> None:
    assert checks.check_schema(INFRA, schema) == []


def test_module_calls_match_module_variables() -> None:
    assert checks.check_modules(INFRA) == []


def test_infra_meets_the_policies() -> None:
    assert checks.check_policy(INFRA) == []


# --- purpose-broken copies -----------------------------------------------------------------------


def test_unformatted_file_is_reported(broken: Path, hclfmt: Path) -> None:
    edit(
        broken / "modules/firestore/main.tf",
        '  type                              = "FIRESTORE_NATIVE"',
        '  type = "FIRESTORE_NATIVE"',
    )
    assert checks.check_format(broken, hclfmt) == [
        "modules/firestore/main.tf: needs formatting"
    ] or checks.check_format(broken, hclfmt)[0].startswith("modules/firestore/main.tf")


def test_misspelt_argument_is_reported(broken: Path, schema: dict[str, Any]) -> None:
    edit(
        broken / "modules/cloud_run_service/main.tf",
        "max_instance_request_concurrency",
        "max_instance_request_concurency",
    )
    assert checks.check_schema(broken, schema) == [
        "modules/cloud_run_service/main.tf: resource google_cloud_run_v2_service.this.template: "
        "unknown argument 'max_instance_request_concurency'"
    ]


def test_misspelt_nested_and_dynamic_blocks_are_reported(
    broken: Path, schema: dict[str, Any]
) -> None:
    path = broken / "modules/cloud_run_service/main.tf"
    edit(path, "      startup_probe {", "      startup_probes {")
    edit(path, "            secret_key_ref {", "            secret_ref {")
    problems = checks.check_schema(broken, schema)
    assert any("template.containers: unknown argument 'startup_probes'" in p for p in problems)
    assert any("env.value_source: unknown argument 'secret_ref'" in p for p in problems)


def test_missing_required_argument_is_reported(broken: Path, schema: dict[str, Any]) -> None:
    edit(
        broken / "modules/platform/main.tf",
        "  network                  = google_compute_network.vpc.id\n",
        "",
    )
    assert any(
        "google_compute_subnetwork.services: missing required argument 'network'" in p
        for p in checks.check_schema(broken, schema)
    )


def test_misspelt_module_argument_is_reported(broken: Path) -> None:
    edit(
        broken / "envs/prod/main.tf",
        "  deletion_protection   = true",
        "  delete_protection     = true",
    )
    assert checks.check_modules(broken) == [
        "envs/prod/main.tf: module platform: no variable 'delete_protection'"
    ]


def test_public_backup_service_is_reported(broken: Path) -> None:
    path = broken / "modules/platform/main.tf"
    text = path.read_text()
    backup = text.index("    backup = {")
    path.write_text(text[:backup] + text[backup:].replace("public = false", "public = true", 1))
    problems = checks.check_policy(broken)
    assert "platform: backup must be private" in problems
    assert any(
        re.match(r"platform: job backup-\w+ targets backup, which is not private", p)
        for p in problems
    )


def test_all_users_on_every_service_is_reported(broken: Path) -> None:
    edit(
        broken / "modules/cloud_run_service/main.tf",
        'invokers     = var.public ? ["allUsers"] : var.invokers',
        'invokers     = concat(["allUsers"], var.invokers)',
    )
    assert any(
        "allUsers must be granted to public services only" in p for p in checks.check_policy(broken)
    )


def test_missing_alert_is_reported(broken: Path) -> None:
    path = broken / "modules/monitoring/main.tf"
    text = path.read_text()
    start = text.index("    VertexAIHighErrorRate = {")
    end = text.index("    VertexAILowCacheHitRate = {")
    path.write_text(text[:start] + text[end:])
    assert checks.check_monitoring(broken) == ["monitoring: alert VertexAIHighErrorRate is missing"]


def test_alert_without_its_threshold_is_reported(broken: Path) -> None:
    edit(
        broken / "modules/monitoring/main.tf",
        ' > ${var.error_ratio}"',
        ' > 0.5"',
    )
    assert checks.check_monitoring(broken) == [
        "monitoring: VertexAIHighErrorRate: query does not compare with its threshold"
    ]


def test_changed_alert_threshold_is_reported(broken: Path) -> None:
    edit(
        broken / "modules/monitoring/variables.tf", "default     = 100000", "default     = 1000000"
    )
    assert checks.check_monitoring(broken) == [
        "monitoring: VertexAIHighUsage: usage_tokens_per_minute = 1000000, not 100000"
    ]


def test_missing_kpi_metric_is_reported(broken: Path) -> None:
    path = broken / "modules/monitoring/main.tf"
    text = path.read_text()
    line = next(
        row for row in text.splitlines(keepends=True) if '"vertex_ai.client.cache_misses" =' in row
    )
    path.write_text(text.replace(line, ""))
    assert (
        "monitoring: no log-based metric vertex_ai.client.cache_misses"
        in checks.check_monitoring(broken)
    )


def test_scheduler_audience_other_than_the_checked_one_is_reported(broken: Path) -> None:
    edit(
        broken / "modules/platform/main.tf",
        "service_uri               = local.url[each.value.function]",
        "service_uri               = module.service[each.value.function].uri",
    )
    assert checks.check_policy(broken) == [
        "platform: scheduler jobs must call the URL the functions check as audience"
    ]


def test_public_ingress_for_private_services_is_reported(broken: Path) -> None:
    edit(
        broken / "modules/cloud_run_service/main.tf",
        '"INGRESS_TRAFFIC_ALL" : "INGRESS_TRAFFIC_INTERNAL_ONLY"',
        '"INGRESS_TRAFFIC_INTERNAL_ONLY" : "INGRESS_TRAFFIC_ALL"',
    )
    assert checks.check_policy(broken) == [
        "cloud_run_service: private services must take internal traffic only"
    ]


def test_availability_slo_rules_are_enforced(broken: Path) -> None:
    edit(
        broken / "modules/monitoring/main.tf",
        'combiner              = "AND"',
        'combiner              = "OR"',
    )
    edit(
        broken / "envs/prod/variables.tf",
        "    condition     = length(var.notification_channels) > 0",
        "    condition     = true",
    )
    edit(broken / "modules/monitoring/main.tf", "rate = 14.4, pace", "rate = 20, pace")
    problems = checks.check_monitoring(broken)
    assert "monitoring: an availability burn alert needs both windows (AND)" in problems
    assert any(p.startswith("monitoring: availability burn windows changed") for p in problems)
    prod = (
        (broken / "envs/prod/variables.tf")
        .read_text()
        .replace(
            "  validation {\n    condition     = true", "  nothing {\n    condition     = true"
        )
    )
    (broken / "envs/prod/variables.tf").write_text(prod)
    assert "envs/prod: notification_channels must be required (validated, no default)" in (
        checks.check_monitoring(broken)
    )


def test_agent_metrics_and_their_panels_are_checked(broken: Path) -> None:
    edit(
        broken / "modules/monitoring/main.tf",
        'jsonPayload.message=\\"tool call\\"',
        'jsonPayload.message=\\"tool used\\"',
    )
    edit(
        broken / "modules/monitoring/main.tf",
        "rate(logging_googleapis_com:user_agent_escalations[5m])",
        "rate(logging_googleapis_com:user_other[5m])",
    )
    assert checks.check_monitoring(broken) == [
        'monitoring: no log-based metric agent.tool_calls counting "tool call" lines',
        "monitoring: no dashboard panel charts agent.escalations",
    ]
