"""Offline checks of ``infra/``: format, provider schema, module interfaces and policies.

Each check returns a list of problems (empty when the tree is sound), so the tests can run them on
``infra/`` and on purpose-broken copies alike.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

from ops.terraform import (
    blocks,
    is_block,
    items,
    locals_of,
    one,
    tf_files,
    unquote,
    variable_defaults,
)
from shared import registry

# The deployed functions as the registry declares them: Terraform must define exactly these.
FUNCTIONS = tuple(spec.name for spec in registry.FUNCTIONS)
PUBLIC = {spec.name for spec in registry.FUNCTIONS if spec.access == "public"}
META_ARGS = {
    "count",
    "for_each",
    "depends_on",
    "provider",
    "lifecycle",
    "provisioner",
    "connection",
}
MODULE_META = {"source", "version", "count", "for_each", "depends_on", "providers"}


# --- format --------------------------------------------------------------------------------------


def check_format(root: Path, hclfmt: Path) -> list[str]:
    """Files ``hclfmt`` would rewrite (it formats exactly as ``terraform fmt``)."""
    problems = []
    for path in tf_files(root):
        run = subprocess.run(
            [str(hclfmt), "-check", "-require-no-change", str(path)],
            capture_output=True,
            text=True,
        )
        if run.returncode != 0:
            detail = run.stderr.strip().splitlines()[-1:] or ["needs formatting"]
            problems.append(f"{path.relative_to(root)}: {detail[0]}")
    return problems


# --- provider schema -----------------------------------------------------------------------------


def load_schema(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text()))


def _check_body(where: str, body: dict[str, Any], node: dict[str, Any], top: bool) -> list[str]:
    """Unknown arguments and blocks, blocks written as arguments and back, missing required ones."""
    problems = []
    seen = set()
    for key, value in items(body):
        if key == "dynamic":
            for entry in value:
                for name, dynamic in items(entry):
                    seen.add(name)
                    if name not in node["blocks"]:
                        problems.append(f"{where}: unknown block '{name}' (dynamic)")
                        continue
                    for content in dynamic.get("content", []):
                        problems += _check_body(
                            f"{where}.{name}", content, node["blocks"][name], False
                        )
            continue
        if top and key in META_ARGS:
            continue
        seen.add(key)
        if key in node["blocks"]:
            if not is_block(value):
                problems.append(f"{where}: '{key}' is a block, written as an argument")
                continue
            for child in value:
                problems += _check_body(f"{where}.{key}", child, node["blocks"][key], False)
        elif key in node["args"]:
            if is_block(value):
                problems.append(f"{where}: '{key}' is an argument, written as a block")
        else:
            problems.append(f"{where}: unknown argument '{key}'")
    for name, required in node["args"].items():
        if required and name not in seen:
            problems.append(f"{where}: missing required argument '{name}'")
    return problems


def check_schema(root: Path, schema: dict[str, Any]) -> list[str]:
    """Every resource and data source type, argument and nested block against the provider."""
    problems = []
    for kind in ("resource", "data"):
        for path, rtype, name, body in blocks(root, kind):
            where = f"{path.relative_to(root)}: {kind} {rtype}.{name}"
            node = schema[kind].get(rtype)
            if node is None:
                problems.append(f"{where}: unknown {kind} type '{rtype}'")
                continue
            problems += _check_body(where, body, node, top=True)
    return problems


def check_modules(root: Path) -> list[str]:
    """Module calls set only declared variables, and every variable that has no default."""
    problems = []
    for path, _, name, body in blocks(root, "module"):
        source = unquote(body.get("source", ""))
        target = (path.parent / source).resolve()
        if not source.startswith(".") or not target.is_dir():
            problems.append(f"{path.relative_to(root)}: module {name}: no local source {source!r}")
            continue
        declared = {var: spec for _, _, var, spec in blocks(target, "variable")}
        given = {key for key, _ in items(body)} - MODULE_META
        for key in sorted(given - set(declared)):
            problems.append(f"{path.relative_to(root)}: module {name}: no variable '{key}'")
        for var, spec in declared.items():
            if "default" not in spec and var not in given:
                problems.append(f"{path.relative_to(root)}: module {name}: '{var}' not set")
    return problems


# --- policy --------------------------------------------------------------------------------------


def check_services(root: Path) -> list[str]:
    """Each function has a service and its own service account; only chat and stream are public."""
    problems = []
    platform = locals_of(root / "modules/platform/main.tf")
    functions = {unquote(k): v for k, v in platform.get("functions", {}).items()}
    if sorted(functions) != sorted(FUNCTIONS):
        problems.append(f"platform: functions {sorted(functions)} != {sorted(FUNCTIONS)}")
    for name, spec in functions.items():
        public = spec.get("public")
        if public is not (name in PUBLIC):
            problems.append(f"platform: {name} must be {'public' if name in PUBLIC else 'private'}")
        if any("owner" in unquote(r) or "editor" in unquote(r) for r in spec.get("roles", [])):
            problems.append(f"platform: {name} has a basic role (owner/editor)")

    module = root / "modules/cloud_run_service"
    service = one(module, "resource", "google_cloud_run_v2_service", "this")
    account = one(module, "resource", "google_service_account", "this")
    if service is None or account is None:
        return [*problems, "cloud_run_service: needs a service and its own service account"]
    template = service.get("template", [{}])[0]
    if template.get("service_account") != "${google_service_account.this.email}":
        problems.append("cloud_run_service: the revision must run as the service's own account")
    ingress = service.get("ingress", "")
    if ingress != '${var.public ? "INGRESS_TRAFFIC_ALL" : "INGRESS_TRAFFIC_INTERNAL_ONLY"}':
        problems.append("cloud_run_service: private services must take internal traffic only")
    members = str(locals_of(module / "main.tf").get("invokers", ""))
    if members != '${var.public ? ["allUsers"] : var.invokers}':
        problems.append(
            f"cloud_run_service: allUsers must be granted to public services only ({members})"
        )
    if "traffic" not in str(service.get("lifecycle", "")):
        problems.append("cloud_run_service: traffic belongs to the canary (ignore_changes)")
    return problems


def check_scheduler(root: Path) -> list[str]:
    """Scheduler jobs call private services with an OIDC token whose audience is the service."""
    problems = []
    platform = locals_of(root / "modules/platform/main.tf")
    functions = {unquote(k): v for k, v in platform.get("functions", {}).items()}
    for job, spec in platform.get("jobs", {}).items():
        target = unquote(spec.get("function"))
        if functions.get(target, {}).get("public", True) is not False:
            problems.append(f"platform: job {unquote(job)} targets {target}, which is not private")
    job = one(root / "modules/scheduler_job", "resource", "google_cloud_scheduler_job", "this")
    target = (job or {}).get("http_target", [{}])[0]
    oidc = target.get("oidc_token", [{}])[0]
    if oidc.get("audience") != "${var.service_uri}" or "service_account_email" not in oidc:
        problems.append("scheduler_job: the request must carry an OIDC token for the service")
    # The audience Scheduler signs for must be the one the function checks (NGX_INVOKER_AUDIENCE).
    calls = {name: body for _, _, name, body in blocks(root / "modules/platform", "module")}
    if calls.get("job", {}).get("service_uri") != "${local.url[each.value.function]}":
        problems.append(
            "platform: scheduler jobs must call the URL the functions check as audience"
        )
    if (
        "NGX_INVOKER_AUDIENCE = local.url[each.key]"
        not in (root / "modules/platform/main.tf").read_text()
    ):
        problems.append("platform: private functions must check their own URL as audience")
    return problems


ALERTS: dict[str, dict[str, float]] = {
    # display name prefix: (variable → required default)
    "VertexAIHighUsage": {"usage_tokens_per_minute": 100000, "usage_duration_s": 900},
    "VertexAIHighErrorRate": {"error_ratio": 0.05, "error_duration_s": 300},
    "VertexAILowCacheHitRate": {"cache_hit_ratio": 0.5, "cache_duration_s": 1800},
}
QUERIES = {
    "VertexAIHighUsage": r"\* 60 > \$\{var\.usage_tokens_per_minute\}$",
    "VertexAIHighErrorRate": r"/ .+ > \$\{var\.error_ratio\}$",
    "VertexAILowCacheHitRate": r"/ \(.+\) < \$\{var\.cache_hit_ratio\}$",
}
DURATIONS = {
    "VertexAIHighUsage": "usage_duration_s",
    "VertexAIHighErrorRate": "error_duration_s",
    "VertexAILowCacheHitRate": "cache_duration_s",
}
METRICS = (
    "vertex_ai.client.latency",
    "vertex_ai.client.errors",
    "vertex_ai.client.cache_hits",
    "vertex_ai.client.cache_misses",
    "vertex_ai.client.tokens",
)


def check_monitoring(root: Path) -> list[str]:
    """KPI metrics, the three alerts and their thresholds, the latency SLO and its burn alerts."""
    problems = []
    module = root / "modules/monitoring"
    defaults = variable_defaults(module)
    local = locals_of(module / "main.tf")
    metrics = {unquote(k) for k in local.get("metrics", {})}
    for metric in METRICS:
        if metric not in metrics:
            problems.append(f"monitoring: no log-based metric {metric}")
    policy = one(module, "resource", "google_monitoring_alert_policy", "kpi")
    promql = (policy or {}).get("conditions", [{}])[0].get("condition_prometheus_query_language")
    if (
        policy is None
        or policy.get("for_each") != "${local.kpi_alerts}"
        or not promql
        or promql[0].get("query") != "${each.value.query}"
        or promql[0].get("duration") != '"${each.value.duration_s}s"'
    ):
        problems.append("monitoring: the KPI alert policies must be made from local.kpi_alerts")
    alerts = {unquote(k): v for k, v in local.get("kpi_alerts", {}).items()}
    for alert, thresholds in ALERTS.items():
        spec = alerts.get(alert)
        if spec is None:
            problems.append(f"monitoring: alert {alert} is missing")
            continue
        for variable, wanted in thresholds.items():
            if defaults.get(variable) != wanted:
                problems.append(
                    f"monitoring: {alert}: {variable} = {defaults.get(variable)}, not {wanted}"
                )
        if not re.search(QUERIES[alert], unquote(spec.get("query", ""))):
            problems.append(f"monitoring: {alert}: query does not compare with its threshold")
        if spec.get("duration_s") != f"${{var.{DURATIONS[alert]}}}":
            problems.append(f"monitoring: {alert}: duration is not var.{DURATIONS[alert]}")
    slo = one(module, "resource", "google_monitoring_slo", "latency")
    if (
        slo is None
        or defaults.get("latency_threshold_ms") != 2000
        or defaults.get("latency_goal") != 0.95
    ):
        problems.append("monitoring: latency SLO (P95 < 2000 ms) is missing or changed")
    burns = {unquote(k) for k in local.get("burn_alerts", {})}
    burn_policy = one(module, "resource", "google_monitoring_alert_policy", "latency_burn")
    if len(burns) < 2 or "select_slo_burn_rate" not in str(burn_policy):
        problems.append("monitoring: the latency SLO needs fast and slow burn-rate alerts")
    problems += _check_availability(root, module, local)
    if one(module, "resource", "google_monitoring_dashboard", "kpis") is None:
        problems.append("monitoring: the dashboard is missing")
    return problems + _check_agent(module, local)


# The agent's log-based metrics: the logger and message of the line each one counts.
AGENT_METRICS = {
    "agent.tool_calls": ('"agent.tools"', '"tool call"'),
    "agent.escalations": ('"agent.routing"', '"agent escalation"'),
}


def _check_agent(module: Path, local: dict[str, Any]) -> list[str]:
    """The agent's metrics count the lines the runtime writes, and the dashboard charts them."""
    problems = []
    metrics = {unquote(k): v for k, v in local.get("agent_metrics", {}).items()}
    dashboard = (module / "main.tf").read_text()
    for metric, (logger, message) in AGENT_METRICS.items():
        spec = metrics.get(metric)
        wanted = (f"jsonPayload.logger={logger}", f"jsonPayload.message={message}")
        if spec is None or not all(
            w in unquote(spec.get("filter", "")).replace("\\", "") for w in wanted
        ):
            problems.append(f"monitoring: no log-based metric {metric} counting {message} lines")
        series = "logging_googleapis_com:user_" + metric.replace(".", "_")
        if series not in dashboard:
            problems.append(f"monitoring: no dashboard panel charts {metric}")
    return problems


def _check_availability(root: Path, module: Path, local: dict[str, Any]) -> list[str]:
    """An availability SLO per public service, each with multi-window fast and slow burn alerts,
    and prod requiring a notification channel."""
    problems = []
    slo = one(module, "resource", "google_monitoring_slo", "availability")
    if (
        slo is None
        or "5xx" not in str(slo)
        or unquote(slo.get("for_each")) != ("${toset(var.public_services)}")
    ):
        problems.append("monitoring: an availability SLO (non-5xx share) per public service")
    windows = {unquote(k): v for k, v in local.get("availability_windows", {}).items()}
    pairs = {
        (unquote(w.get("long")), unquote(w.get("short")), w.get("rate")) for w in windows.values()
    }
    if pairs != {("3600s", "300s", 14.4), ("21600s", "1800s", 6)}:
        problems.append(f"monitoring: availability burn windows changed: {sorted(map(str, pairs))}")
    policy = one(module, "resource", "google_monitoring_alert_policy", "availability_burn")
    if policy is None or unquote(policy.get("combiner")) != "AND":
        problems.append("monitoring: an availability burn alert needs both windows (AND)")
    platform = (root / "modules/platform/main.tf").read_text()
    if "if function.public]" not in platform:
        problems.append("platform: public_services must be the public functions")
    prod = {n: s for _, _, n, s in blocks(root / "envs/prod", "variable")}
    channels = prod.get("notification_channels", {})
    if "default" in channels or "validation" not in channels:
        problems.append("envs/prod: notification_channels must be required (validated, no default)")
    return problems


def check_policy(root: Path) -> list[str]:
    return check_services(root) + check_scheduler(root) + check_monitoring(root)
