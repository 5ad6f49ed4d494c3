"""``agentctl cache analyze|apply|invalidate``: the cache-maintenance code, from a terminal.

``apply`` and ``invalidate`` only report what they would do unless ``--yes`` is given.
``analyze --trace FILE`` judges a recorded trace instead of the live counters: it replays the
trace under the current policy, recommends, and replays again under the recommendation.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ops.settings import OpsSettings, get_ops_settings
from ops.ui import add_yes
from shared import errors


def add_commands(commands: Any) -> None:
    cache = commands.add_parser("cache", help="analyze the response cache and tune its policy")
    actions = cache.add_subparsers(dest="action", required=True)
    analyze = actions.add_parser("analyze", help="report hit rates and recommend a policy")
    analyze.add_argument("--window-hours", type=int, help="default: since the last apply")
    analyze.add_argument("--trace", type=Path, help="judge a recorded NDJSON trace instead")
    apply = actions.add_parser("apply", help="write the recommended policy (dry run unless --yes)")
    apply.add_argument("--window-hours", type=int)
    add_yes(apply, "write the policy")
    invalidate = actions.add_parser("invalidate", help="delete cached answers (unless dry run)")
    which = invalidate.add_mutually_exclusive_group(required=True)
    which.add_argument("--tag", help="model:NAME, template:VERSION or class:NAME")
    which.add_argument("--class", dest="query_class")
    add_yes(invalidate, "delete the entries")
    for parser in (analyze, apply, invalidate):
        parser.add_argument("--json", action="store_true", help="print the JSON report")
    cache.set_defaults(run=main)


def _table(report: dict[str, Any]) -> None:
    print(f"window {report['window']['since'][:19]} → {report['window']['until'][:19]}")
    head = (
        "CLASS",
        "HITS",
        "MISSES",
        "HIT%",
        "REPEATS",
        "TTL NOW",
        "TTL NEW",
        "PRED NOW",
        "PRED NEW",
        "BEST",
        "MEMORY",
    )
    print("{:16} {:>8} {:>8} {:>6} {:>8} {:>8} {:>8} {:>9} {:>9} {:>9} {:>10}".format(*head))
    for c in report["classes"]:
        print(
            f"{c['query_class'][:16]:16} {c['hits']:>8} {c['misses']:>8} "
            f"{c['hit_rate']:>6.0%} {c['repeats_observed']:>8} {c['current_ttl_s']:>8} "
            f"{c['recommended_ttl_s']:>8} {c['predicted_hit_rate_now']:>9.0%} "
            f"{c['predicted_hit_rate']:>9.0%} {c['best_possible_hit_rate']:>9.0%} "
            f"{c['estimated_memory_bytes']:>10,}"
        )
    for c in report["classes"]:
        print(f"  {c['query_class']}: {c['reason']}")
    policy, reasons = report["recommended_policy"], report["reasons"]
    print(f"entry size limit   {policy['max_entry_bytes']:>8} B  {reasons['max_entry_bytes']}")
    print(
        f"compress from      {policy['compress_min_bytes']:>8} B  "
        f"{report['reasons']['compress_min_bytes']}"
    )
    print(f"eviction policy    {report['reasons']['eviction_policy']}")
    if "simulated_hit_rate_now" in report:
        print(
            f"replayed hit rate: {report['simulated_hit_rate_now']:.1%} now → "
            f"{report['simulated_hit_rate_recommended']:.1%} under the recommendation"
        )


def _trace_report(settings: OpsSettings, path: Path) -> dict[str, Any]:
    from ops.cache import trace
    from shared.cache_maintenance.analysis import MemoryFigures
    from shared.cache_maintenance.jobs import recommend
    from shared.llm.policy import CachePolicy

    lookups = trace.load(path)
    if not lookups:
        raise ValueError(f"{path}: the trace is empty")
    policy = CachePolicy.from_settings(settings)
    counters = trace.replay(lookups, policy, settings.cache_reuse_horizon_s)
    memory = MemoryFigures(0, 0, settings.cache_memory_budget_bytes, "", 0, 0)
    start = datetime.fromtimestamp(0, UTC)
    report, recommended = recommend(
        settings, counters, policy, memory, start, start + timedelta(seconds=lookups[-1].t)
    )
    report["simulated_hit_rate_now"] = trace.hit_rate(counters)
    after = trace.replay(lookups, recommended, settings.cache_reuse_horizon_s)
    report["simulated_hit_rate_recommended"] = trace.hit_rate(after)
    return {"action": "analyze", **report}


def main(args: argparse.Namespace) -> int:
    settings = get_ops_settings()
    try:
        if args.action == "analyze" and args.trace:
            report = _trace_report(settings, args.trace)
        else:
            report = asyncio.run(_live(settings, args))
    except (errors.AppError, ValueError, OSError) as exc:
        message = exc.message if isinstance(exc, errors.AppError) else str(exc)
        print(f"agentctl cache {args.action}: {message}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(report, indent=1, default=str))
    elif args.action in ("analyze", "apply"):
        _table(report)
        if args.action == "apply":
            state = "dry run: would change" if report["dry_run"] else "changed"
            if not report["policy_changed"]:
                state = "unchanged"
            hint = "; add --yes to write" if report["dry_run"] and report["policy_changed"] else ""
            print(f"policy version {report['policy_version']}: {state}{hint}")
            print(f"eviction: {json.dumps(report['eviction'])}")
    else:
        print(json.dumps(report))
    return 0


async def _live(settings: OpsSettings, args: argparse.Namespace) -> dict[str, Any]:
    from shared.auth.invoker import Invoker
    from shared.cache_maintenance.jobs import CacheMaintenance
    from shared.cache_maintenance.service import CacheCall, perform
    from shared.memorystore import Memorystore
    from shared.stores.firestore import make_client

    body: dict[str, Any] = {"action": args.action}
    if args.action in ("analyze", "apply") and args.window_hours:
        body["window_hours"] = args.window_hours
    if args.action == "apply":
        body["dry_run"] = not args.yes
    if args.action == "invalidate":
        body |= {"tag": args.tag, "query_class": args.query_class, "dry_run": not args.yes}
    try:
        call = CacheCall.model_validate(body)
    except ValueError as exc:
        raise ValueError(str(exc).splitlines()[0]) from None
    store = Memorystore(settings)
    try:
        jobs = CacheMaintenance(settings, store, make_client(settings))
        invoker = Invoker(f"agentctl:{getpass.getuser()}", "operator")
        return await perform(jobs, call, invoker)
    finally:
        await store.close()
