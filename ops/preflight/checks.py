"""The items of docs/production-checklist.md, each a check with a verdict and the reason.

Static items read the environment's Terraform inputs (`config.EnvConfig`); evidence items read
what a release leaves behind: the load test's ``summary.json`` and the canary history in Firestore.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from ops.preflight.config import EnvConfig

Verdict = Literal["pass", "fail"]
SECRET_NAME = re.compile(r"(KEY|SECRET|TOKEN|PASSWORD|CREDENTIAL)", re.IGNORECASE)
LOADTEST_MAX_AGE = timedelta(days=30)
REHEARSAL_MAX_AGE = timedelta(days=90)
PUBLIC = ("chat", "stream")
# Missing inputs that an item below names itself.
REPORTED_BY_ITEMS = {"cors_origins", "notification_channels"}


@dataclass(frozen=True)
class Result:
    item: str
    verdict: Verdict
    detail: str


@dataclass
class Evidence:
    """What a release left behind; ``None`` where it was not given or could not be read."""

    loadtest_summary: Path | None = None
    rehearsals: list[datetime] | None = None  # rollbacks and aborts found in the canary history
    rehearsal_problem: str = "not checked (run without --no-live)"


def _ok(item: str, detail: str) -> Result:
    return Result(item, "pass", detail)


def _bad(item: str, detail: str) -> Result:
    return Result(item, "fail", detail)


def _extra_env(config: EnvConfig) -> dict[str, dict[str, str]]:
    """Each function's plain settings (``extra_env``), by function."""
    return {
        str(function): {str(k): str(v) for k, v in values.items()}
        for function, values in (config.get("extra_env") or {}).items()
    }


def _settings_of(config: EnvConfig, name: str) -> list[tuple[str, str]]:
    """(function, value) for every function that sets ``name``."""
    return [(f, env[name]) for f, env in _extra_env(config).items() if name in env]


def secrets(config: EnvConfig, _: Evidence) -> Result:
    leaked = sorted(
        f"{k} ({function})"
        for function, env in _extra_env(config).items()
        for k in env
        if SECRET_NAME.search(k)
    )
    if leaked:
        return _bad("secrets", f"in plain env, not Secret Manager: {', '.join(leaked)}")
    held = sorted({k for v in (config.get("secret_env") or {}).values() for k in v})
    return _ok("secrets", "none in plain env" + (f"; from Secret Manager: {held}" if held else ""))


def cors(config: EnvConfig, _: Evidence) -> Result:
    if "cors_origins" in config.missing:
        return _bad("cors", "cors_origins is not set: list the web app's origins ([] for none)")
    origins = config.get("cors_origins") or []
    wrong = [o for o in origins if o == "*" or not o.startswith("https://") or "localhost" in o]
    if wrong:
        return _bad("cors", f"origins must be exact https origins, not {wrong}")
    return _ok("cors", f"{len(origins)} origin(s)" if origins else "none (mobile clients only)")


def notifications(config: EnvConfig, _: Evidence) -> Result:
    if config.get("notification_channels"):
        return _ok("alerts", f"{len(config.get('notification_channels'))} notification channel(s)")
    if "notification_channels" in config.missing:
        return _bad("alerts", "notification_channels is not set: alerts would notify nobody")
    return _bad("alerts", "notification_channels is empty: alerts would notify nobody")


def memorystore(config: EnvConfig, _: Evidence) -> Result:
    off = [name for name in ("memorystore_iam_auth", "memorystore_tls") if not config.get(name)]
    if off:
        return _bad("memorystore", f"turned off: {', '.join(off)}")
    return _ok("memorystore", "IAM authentication and server-authenticated TLS")


def backups(config: EnvConfig, _: Evidence) -> Result:
    database = config.module_block("firestore", "google_firestore_database", "this")
    problems = []
    if database.get("point_in_time_recovery_enablement") != "POINT_IN_TIME_RECOVERY_ENABLED":
        problems.append("point-in-time recovery is off")
    for name, floor in (("firestore_backup_retention_days", 7), ("backup_keep_days", 7)):
        if int(config.get(name, 0)) < floor:
            problems.append(f"{name} = {config.get(name)} < {floor}")
    if config.env == "prod" and config.get("deletion_protection") is not True:
        problems.append("deletion_protection is off")
    if problems:
        return _bad("backups", "; ".join(problems))
    return _ok(
        "backups",
        f"PITR on; managed backups kept {config.get('firestore_backup_retention_days')} d, "
        f"logical {config.get('backup_keep_days')} d",
    )


def limits(config: EnvConfig, _: Evidence) -> Result:
    from shared.settings import Settings

    defaults = Settings.model_construct()  # the runtime's defaults, no environment read
    for function, value in _settings_of(config, "NGX_DAILY_TOKEN_BUDGET"):
        if int(value) <= 0:
            return _bad("limits", f"NGX_DAILY_TOKEN_BUDGET = 0 on {function}: spending unbounded")
    for function, value in _settings_of(config, "NGX_RATE_LIMIT_TIERS"):
        tiers = json.loads(value)
        if not tiers or min(tiers.values()) <= 0:
            return _bad("limits", f"rate-limit tiers on {function} must all be positive: {tiers}")
    return _ok(
        "limits",
        f"{defaults.daily_token_budget:,} tokens per user and day and tiers "
        f"{defaults.rate_limit_tiers} requests/min unless overridden (all positive)",
    )


def instances(config: EnvConfig, _: Evidence) -> Result:
    services = config.get("services") or {}
    if config.env != "prod":
        return _ok("min-instances", "not required outside prod")
    cold = [s for s in PUBLIC if int(services.get(s, {}).get("min_instances", 0)) < 1]
    if cold:
        return _bad("min-instances", f"min_instances = 0 for {', '.join(cold)}: cold starts")
    return _ok("min-instances", ", ".join(f"{s} {services[s]['min_instances']}" for s in PUBLIC))


def logging(config: EnvConfig, _: Evidence) -> Result:
    days = int(config.get("log_retention_days", 0))
    problems = []
    if days < 30:
        problems.append(f"log_retention_days = {days} < 30")
    if problems:
        return _bad("logging", "; ".join(problems))
    return _ok("logging", f"kept {days} d; prompt text never logged, personal data redacted")


def slos(config: EnvConfig, _: Evidence) -> Result:
    found = config.module_resources("monitoring", "google_monitoring_slo")
    policies = config.module_resources("monitoring", "google_monitoring_alert_policy").values()
    if not found:
        return _bad("slos", "no google_monitoring_slo in infra/modules/monitoring")

    def burn_rate_alerted(slo: str) -> bool:
        reference = re.compile(rf"google_monitoring_slo\.{slo}(\[[^\]]*\])?\.name")
        texts = [json.dumps(policy) for policy in policies]
        return any(reference.search(text) and "select_slo_burn_rate" in text for text in texts)

    unalerted = [name for name in found if not burn_rate_alerted(name)]
    if unalerted:
        return _bad("slos", f"SLOs without burn-rate alerts: {', '.join(unalerted)}")
    return _ok("slos", f"{len(found)} SLO(s) with burn-rate alerts: {', '.join(found)}")


def loadtest(_: EnvConfig, evidence: Evidence, now: datetime | None = None) -> Result:
    path = evidence.loadtest_summary
    if path is None:
        return _bad("loadtest", "no result given (--loadtest-summary, from `agentctl loadtest`)")
    try:
        summary = json.loads(path.read_text())
        met, finished = summary["slo"]["met"], datetime.fromisoformat(summary["finished_at"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return _bad("loadtest", f"{path}: not a load test summary ({exc})")
    age = (now or datetime.now(UTC)) - finished
    if not met:
        return _bad("loadtest", f"{summary.get('scenario')}: SLO missed ({path})")
    if age > LOADTEST_MAX_AGE:
        return _bad("loadtest", f"the last passing run is {age.days} days old (> 30)")
    return _ok("loadtest", f"{summary.get('scenario')} met its SLO {age.days} day(s) ago")


def rollback(_: EnvConfig, evidence: Evidence, now: datetime | None = None) -> Result:
    if evidence.rehearsals is None:
        return _bad("rollback", evidence.rehearsal_problem)
    since = (now or datetime.now(UTC)) - REHEARSAL_MAX_AGE
    recent = [at for at in evidence.rehearsals if at >= since]
    if not recent:
        return _bad("rollback", "no canary rollback or abort in the last 90 days")
    return _ok("rollback", f"last rehearsed {max(recent):%Y-%m-%d}")


CHECKS: tuple[Callable[[EnvConfig, Evidence], Result], ...] = (
    secrets,
    cors,
    notifications,
    memorystore,
    backups,
    limits,
    instances,
    logging,
    slos,
    loadtest,
    rollback,
)


def run(config: EnvConfig, evidence: Evidence) -> list[Result]:
    """Every item, in the checklist's order; missing required inputs first."""
    results = [
        _bad("inputs", f"required variable {name} has no value")
        for name in config.missing
        if name not in REPORTED_BY_ITEMS
    ]
    return results + [check(config, evidence) for check in CHECKS]


async def canary_rehearsals(db: Any) -> list[datetime]:
    """When rollouts were rolled back or aborted, from ``canaries/*`` and their ``past/``."""
    found: list[datetime] = []
    async for service in db.collection("canaries").stream():
        docs = [service]
        docs += [past async for past in service.reference.collection("past").stream()]
        for doc in docs:
            for change in (doc.to_dict() or {}).get("history", []):
                if change.get("action") in ("rollback", "abort"):
                    at = change["at"]
                    found.append(at if isinstance(at, datetime) else datetime.fromisoformat(at))
    return found


def as_json(results: list[Result]) -> Any:
    return [{"item": r.item, "verdict": r.verdict, "detail": r.detail} for r in results]
