"""``agentctl preflight --env staging|prod``: is this environment ready for production traffic?

Checks each item of docs/production-checklist.md against the environment's Terraform inputs
(``infra/envs/ENV``, plus ``--var-file``) and the evidence a release leaves: the last load test's
``summary.json`` (``--loadtest-summary``) and the canary history in the environment's Firestore
(read with the operator's credentials; ``--no-live`` skips it, which fails that item). Prints one
row per item and a verdict; exit 0 when every item passes, 1 when any fails, 2 when it cannot run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from ops.preflight import checks
from ops.preflight.config import ConfigError, EnvConfig, load


def add_commands(commands: Any) -> None:
    parser = commands.add_parser("preflight", help="check an environment against the checklist")
    parser.add_argument("--env", required=True, choices=["staging", "prod"])
    parser.add_argument("--var-file", type=Path, help="the environment's terraform.tfvars")
    parser.add_argument("--infra", type=Path, default=Path("infra"), help="default: ./infra")
    parser.add_argument("--loadtest-summary", type=Path, help="summary.json of the last load test")
    parser.add_argument("--no-live", action="store_true", help="do not read the canary history")
    parser.add_argument("--json", action="store_true", help="the results as JSON")
    parser.set_defaults(run=main)


def _evidence(args: argparse.Namespace, config: EnvConfig) -> checks.Evidence:
    evidence = checks.Evidence(loadtest_summary=args.loadtest_summary)
    if args.no_live:
        return evidence
    project = config.get("project_id")
    if not isinstance(project, str) or not project:
        evidence.rehearsal_problem = "not checked: the environment's project_id has no value"
        return evidence
    from google.cloud.firestore_v1.async_client import AsyncClient

    async def read() -> list[Any]:
        # The checked environment's own database (the emulator only when one is configured).
        db = AsyncClient(project=project)
        try:
            return await asyncio.wait_for(checks.canary_rehearsals(db), 30)
        finally:
            db.close()  # type: ignore[no-untyped-call]

    try:
        evidence.rehearsals = asyncio.run(read())
    except Exception as exc:  # no credentials, no network, no database: say which
        evidence.rehearsal_problem = f"canary history unreadable: {type(exc).__name__}: {exc}"
    return evidence


def main(args: argparse.Namespace) -> int:
    try:
        config = load(args.infra, args.env, args.var_file)
    except ConfigError as exc:
        print(f"agentctl preflight: {exc}", file=sys.stderr)
        return 2
    results = checks.run(config, _evidence(args, config))
    failed = [r for r in results if r.verdict == "fail"]
    if args.json:
        print(json.dumps({"env": args.env, "ready": not failed, "items": checks.as_json(results)}))
    else:
        width = max(len(r.item) for r in results)
        print(f"{'ITEM'.ljust(width)}  VERDICT  DETAIL")
        for r in results:
            print(f"{r.item.ljust(width)}  {r.verdict.upper():7}  {r.detail}")
        verdict = "READY" if not failed else f"NOT READY: {len(failed)} of {len(results)} failed"
        print(f"\npreflight {args.env}: {verdict}")
    return 1 if failed else 0
