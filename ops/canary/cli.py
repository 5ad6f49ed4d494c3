"""``agentctl canary start|status|promote|abort``: shift a Cloud Run service to a new revision in
steps, checking the candidate's metrics at every interval and rolling back when they fail.

``start`` gives the candidate the first step (default 20% → 50% → 100%, baking 30 min then 60 min)
and, unless ``--no-wait``, keeps checking until the rollout is promoted or rolled back. Each check
reads the candidate's 5xx ratio and p95 latency (and, with ``--kpis``, the model error ratio and
p95 from the log-based ``vertex_ai.client`` metrics) over the last ``--window``; fewer than
``--min-requests`` requests make a check inconclusive, never a pass. A step moves on after its
bake time at the next passing check. ``--max-failed-checks`` failed checks roll the traffic back
to the stable revision; the candidate keeps its tag at 0% for debugging.

The rollout lives in Firestore (``canaries/{service}``): ``start --resume --service S``
continues it from any terminal or a scheduled job (``--max-wait 0`` does what is due and exits).
``promote`` moves one step now (``--full``: straight to 100%); ``abort`` restores 100% stable.
``--dry-run`` prints the plan and has Cloud Run validate each split (``validate_only``), changing
nothing.

Exit status: 0 promoted or still running as asked, 1 rolled back, aborted or failed, 2 bad input.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import logging
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

from ops.canary import plan as plans
from ops.settings import OpsSettings, get_ops_settings
from ops.ui import DRY_RUN_NOTE, add_yes
from shared import errors

# Refusals of what was asked (exit 2), as opposed to failures while doing it (exit 1).
BAD_INPUT = (
    errors.BadRequest,
    errors.ValidationFailed,
    errors.NotFound,
    errors.Conflict,
    errors.FailedPrecondition,
)


def add_commands(commands: Any) -> None:
    canary = commands.add_parser(
        "canary",
        help="shift Cloud Run traffic to a new revision in steps, with metric gates",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = canary.add_subparsers(dest="action", required=True)

    def action(name: str, help_text: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = actions.add_parser(
            name, help=help_text, description=help_text
        )
        parser.add_argument(
            "--service",
            required=True,
            help="a function (chat, stream, cache-maintenance, backup) or a Cloud Run service id",
        )
        return parser

    start = action("start", "start a rollout, or continue a stored one with --resume")
    which = start.add_mutually_exclusive_group(required=True)
    which.add_argument("--revision", help="the candidate revision, e.g. ngx-chat-00002-abc")
    which.add_argument(
        "--resume",
        action="store_true",
        help="continue the stored rollout of --service where it is, with its stored plan "
        "(from another terminal, or a scheduled job with --max-wait 0)",
    )
    start.add_argument("--stable", help="default: the revision serving 100%% now")
    start.add_argument("--tag", default="canary", help="the candidate's tag (default canary)")
    start.add_argument(
        "--steps", default=plans.DEFAULT_STEPS, help="candidate percents (default %(default)s)"
    )
    start.add_argument(
        "--bake",
        default=plans.DEFAULT_BAKE,
        help="time at each step before 100%%, or one for all (default %(default)s)",
    )
    start.add_argument("--interval", default="60s", help="time between checks (default 60s)")
    start.add_argument("--window", default="5m", help="how far back a check looks (default 5m)")
    start.add_argument(
        "--min-requests", type=int, default=100, help="fewer: inconclusive (default 100)"
    )
    start.add_argument(
        "--max-error-ratio", type=float, default=0.02, help="5xx / all (default 0.02)"
    )
    start.add_argument("--max-p95-ms", type=float, default=2000.0, help="default 2000")
    start.add_argument(
        "--max-error-ratio-margin",
        type=float,
        help="candidate's 5xx ratio ≤ stable's + this (default NGX_CANARY_MAX_ERROR_RATIO_MARGIN)",
    )
    start.add_argument(
        "--max-p95-ratio",
        type=float,
        help="candidate's p95 ≤ this × stable's (default NGX_CANARY_MAX_P95_RATIO)",
    )
    start.add_argument(
        "--max-window",
        help="a window with too few requests doubles up to this (default NGX_CANARY_MAX_WINDOW_S)",
    )
    start.add_argument(
        "--no-p95-gate",
        action="store_true",
        help="no request-latency gate (streams: a request lasts as long as its stream)",
    )
    start.add_argument(
        "--lag",
        default="3m",
        help="windows end this long ago: Cloud Run metrics arrive late (default 3m)",
    )
    start.add_argument(
        "--supersede",
        action="store_true",
        help="abort a rollout still running (an older release's) instead of refusing",
    )
    start.add_argument(
        "--max-failed-checks",
        type=int,
        default=1,
        help="roll back at this many failed checks (default 1)",
    )
    start.add_argument(
        "--kpis", action="store_true", help="also gate on the log-based vertex_ai.client KPIs"
    )
    start.add_argument(
        "--max-llm-error-ratio", type=float, default=0.05, help="with --kpis (default 0.05)"
    )
    start.add_argument(
        "--max-llm-p95-ms", type=float, default=15000.0, help="with --kpis (default 15000)"
    )
    start.add_argument("--no-wait", action="store_true", help="set the first step and exit")
    start.add_argument(
        "--max-wait", help="stop watching after this long; the rollout stays where it is"
    )
    add_yes(start, "start the rollout")
    status = action("status", "print the rollout, the live split and the last checks")
    status.add_argument("--json", action="store_true")
    promote = action("promote", "advance one step now (--full: straight to 100%%)")
    promote.add_argument("--full", action="store_true")
    add_yes(promote, "move the traffic")
    abort = action("abort", "restore 100%% stable; the candidate keeps its tag at 0%%")
    abort.add_argument("--reason", default="", help="kept in the rollout's history")
    add_yes(abort, "move the traffic back")
    canary.set_defaults(run=main)


def main(args: argparse.Namespace) -> int:
    settings = get_ops_settings()
    _log_to_stderr(settings)
    from google.api_core.exceptions import GoogleAPIError
    from google.auth.exceptions import GoogleAuthError

    try:
        return asyncio.run(_run(settings, args))
    except errors.AppError as exc:
        print(f"agentctl canary {args.action}: {exc.message}", file=sys.stderr)
        return 2 if isinstance(exc, BAD_INPUT) else 1
    except (GoogleAPIError, GoogleAuthError) as exc:  # Firestore, or no credentials at all
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"agentctl canary {args.action}: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(
            f"\nstopped watching; continue with `agentctl canary start --resume --service "
            f"{args.service}`",
            file=sys.stderr,
        )
        return 130


def _log_to_stderr(settings: OpsSettings) -> None:
    """Structured logs of every traffic change on stderr; stdout stays for people."""
    from shared.logs import CloudLoggingFormatter

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(CloudLoggingFormatter(settings.project_id))
    logger = logging.getLogger("ngx.canary")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False


def _or(given: float | None, default: float) -> float:
    return default if given is None else given


def _plan(args: argparse.Namespace) -> plans.Plan:
    s = get_ops_settings()
    bake = [plans.parse_duration(b, "--bake") for b in args.bake.split(",")]
    gates = {
        "interval_s": plans.parse_duration(args.interval, "--interval"),
        "window_s": plans.parse_duration(args.window, "--window"),
        "min_requests": args.min_requests,
        "max_error_ratio": args.max_error_ratio,
        "max_p95_ms": None if args.no_p95_gate else args.max_p95_ms,
        "lag_s": plans.parse_duration(args.lag, "--lag"),
        "max_failed_checks": args.max_failed_checks,
        "kpis": args.kpis,
        "max_llm_error_ratio": args.max_llm_error_ratio,
        "max_llm_p95_ms": args.max_llm_p95_ms,
        "max_error_ratio_margin": _or(args.max_error_ratio_margin, s.canary_max_error_ratio_margin),
        "max_p95_ratio": None
        if args.no_p95_gate
        else _or(args.max_p95_ratio, s.canary_max_p95_ratio),
        "max_window_s": (
            plans.parse_duration(args.max_window, "--max-window")
            if args.max_window
            else s.canary_max_window_s
        ),
    }
    return plans.make_plan(plans.parse_steps(args.steps), bake, gates)


async def _run(settings: OpsSettings, args: argparse.Namespace) -> int:
    from ops.canary.rollout import Canary
    from shared.stores.firestore import make_client

    plan = _plan(args) if args.action == "start" and not args.resume else None
    dry_run = not getattr(args, "yes", False)
    until = None
    if args.action == "start" and args.max_wait is not None:
        wait_s = plans.parse_duration(args.max_wait, "--max-wait")
        until = datetime.now(UTC) + timedelta(seconds=wait_s)
    db = make_client(settings)
    canary = Canary(settings, db, f"agentctl:{getpass.getuser()}", on_event=_print_event)
    try:
        if args.action == "status":
            rollout, split = await canary.status(args.service)
            if args.json:
                print(
                    json.dumps(
                        {"rollout": rollout.model_dump(mode="json"), "split": split.percents},
                        indent=1,
                    )
                )
            else:
                _print_status(rollout, split)
            return 0
        if args.action in ("promote", "abort"):
            if args.action == "promote":
                rollout = await canary.promote(args.service, args.full, dry_run)
            else:
                rollout = await canary.abort(args.service, args.reason, dry_run)
            if dry_run:
                print(f"would set {_split(rollout.desired())} (validated by Cloud Run)")
                print(DRY_RUN_NOTE, file=sys.stderr)
            return 0
        if args.resume:
            rollout, _ = await canary.status(args.service)
        else:
            assert plan is not None
            rollout = await canary.start(
                args.service,
                args.revision,
                plan,
                args.stable,
                args.tag,
                dry_run,
                supersede=args.supersede,
            )
            if dry_run:
                _print_plan(rollout)
                print(DRY_RUN_NOTE, file=sys.stderr)
                return 0
        if args.no_wait or not rollout.running:
            return _outcome(rollout)
        rollout = await canary.drive(rollout.service, until)
        return _outcome(rollout)
    finally:
        await canary.close()
        db.close()


def _outcome(rollout: Any) -> int:
    if rollout.running:
        print(
            f"{rollout.service}: still running, {rollout.candidate} at {rollout.percent}%; "
            f"continue with `agentctl canary start --resume --service {rollout.service}`"
        )
        return 0
    print(f"{rollout.service}: {rollout.outcome}")
    return 0 if rollout.status == "promoted" else 1


def _split(percents: dict[str, int]) -> str:
    return ", ".join(f"{r} {p}%" for r, p in percents.items())


def _time(at: datetime | None) -> str:
    return at.astimezone(UTC).strftime("%H:%M:%SZ") if at else "-"


def _print_event(kind: str, rollout: Any, detail: dict[str, Any]) -> None:
    if kind == "check":
        check = detail["check"]
        line = f"{_time(check.at)}  {check.percent:>3}%  {check.verdict:12}  {check.reason}"
    elif kind == "traffic":
        line = f"{_time(datetime.now(UTC))}  traffic: {detail['split'].text()}"
    else:
        change = rollout.history[-1]
        line = f"{_time(change.at)}  {kind}: {_split(change.percents)} ({change.reason})"
    print(line, flush=True)


def _print_plan(rollout: Any) -> None:
    from ops.canary.rollout import splits

    plan, gates = rollout.plan, rollout.plan.gates
    print(
        f"dry run: {rollout.service}, candidate {rollout.candidate} (tag {rollout.tag}), "
        f"stable {rollout.stable}"
    )
    for step, percents in enumerate(splits(rollout)[:-1]):
        bake = plan.bake(step)
        baking = f"bake {timedelta(seconds=round(bake))}" if bake else "final"
        print(f"  step {step + 1}: {_split(percents)}  ({baking})")
    print(f"  rollback: {_split(splits(rollout)[-1])}")
    kpis = ""
    if gates.kpis:
        kpis = (
            f", model errors ≤ {gates.max_llm_error_ratio:.1%}, "
            f"model p95 ≤ {gates.max_llm_p95_ms:,.0f} ms"
        )
    p95 = "p95 not gated" if gates.max_p95_ms is None else f"p95 ≤ {gates.max_p95_ms:,.0f} ms"
    print(
        f"  checks every {gates.interval_s:g}s over {gates.window_s:g}s: ≥ {gates.min_requests} "
        f"requests, errors ≤ {gates.max_error_ratio:.1%}, {p95}{kpis}; "
        f"roll back at {gates.max_failed_checks} failed check(s)"
    )
    print("every split validated by Cloud Run (validate_only); nothing changed")


def _print_status(rollout: Any, split: Any) -> None:
    plan = rollout.plan
    steps = " → ".join(f"{s}%" for s in plan.steps)
    print(
        f"{rollout.service}: {rollout.status}, candidate {rollout.candidate} at "
        f"{rollout.percent}% (step {min(rollout.step, len(plan.steps) - 1) + 1} of "
        f"{len(plan.steps)}: {steps}), stable {rollout.stable}"
    )
    if rollout.running:
        print(
            f"  step started {_time(rollout.step_started_at)}, bakes "
            f"{plan.bake(rollout.step):g}s; next check {_time(rollout.next_check_at())}; "
            f"failed checks {rollout.failed_checks} (rollback at {plan.gates.max_failed_checks})"
        )
    else:
        print(f"  {rollout.outcome} at {_time(rollout.ended_at)}")
    tags = ", ".join(f"{t} → {r}" for r, t in split.tags.items())
    print(f"  traffic now: {split.text()}" + (f" (tags: {tags})" if tags else ""))
    print("  last checks:")
    for check in rollout.checks[-5:] or []:
        print(f"    {_time(check.at)}  {check.percent:>3}%  {check.verdict:12}  {check.reason}")
    if not rollout.checks:
        print("    none yet")
    print("  traffic changes:")
    for change in rollout.history:
        print(
            f"    {_time(change.at)}  {change.action:8}  {_split(change.percents)}  "
            f"by {change.by}: {change.reason}"
        )
