"""``agentctl migrate status|up``: versioned Firestore data migrations.

``up`` is a dry run unless ``--yes`` (the convention of every destructive command): it lists what
would be applied. With ``--yes`` it takes the lease, applies each pending migration in order and
gives the lease back. Exit codes: 0 done (or nothing to do), 1 a migration failed, 3 another run
holds the lease (``--wait`` waits for it instead).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from ops.migrations.runner import LeaseBusy, MigrationError, Progress, Runner
from ops.settings import OpsSettings, get_ops_settings
from ops.ui import DRY_RUN_NOTE, ProgressLine, add_yes


def add_commands(commands: Any) -> None:
    parser = commands.add_parser("migrate", help="versioned Firestore data migrations")
    actions = parser.add_subparsers(dest="action", required=True)
    status = actions.add_parser("status", help="every migration and whether it is applied")
    status.add_argument("--json", action="store_true", help="as JSON")
    up = actions.add_parser("up", help="apply pending migrations (a dry run unless --yes)")
    add_yes(up, "apply them")
    up.add_argument("--wait", action="store_true", help="wait while another run holds the lease")
    up.add_argument("--json", action="store_true", help="the outcome as JSON")
    parser.set_defaults(run=main)


def make_runner(settings: OpsSettings) -> Runner:
    from ops.migrations.versions import all_migrations
    from shared.stores.firestore import make_client

    return Runner(
        make_client(settings),
        all_migrations(),
        lease_s=settings.migration_lease_s,
        batch_size=settings.migration_batch_size,
    )


def _print_status(rows: list[dict[str, Any]]) -> None:
    print(f"{'#':>4}  {'NAME':24}  {'STATE':8}  {'DOCUMENTS':>9}  APPLIED")
    for row in rows:
        applied = (row["applied_at"] or "-")[:19]
        print(
            f"{row['number']:>4}  {row['name'][:24]:24}  {row['state']:8}  "
            f"{row['documents']:>9}  {applied}"
        )


async def _up(runner: Runner, args: argparse.Namespace) -> dict[str, Any]:
    pending = await runner.pending()
    names = [f"{m.number:04d} {m.name}" for m in pending]
    if not args.yes:
        return {"dry_run": True, "pending": names}
    if args.wait:
        await runner.acquire_waiting()
    else:
        await runner.acquire()
    line = ProgressLine()
    try:

        def report(progress: Progress) -> None:
            line(f"migration {progress.number:04d} {progress.name}", progress.documents)

        done = await runner.up(report)
    finally:
        line.close()
        await runner.release()
    return {
        "dry_run": False,
        "applied": [{"number": p.number, "name": p.name, "documents": p.documents} for p in done],
    }


def main(args: argparse.Namespace) -> int:
    runner = make_runner(get_ops_settings())
    try:
        if args.action == "status":
            rows = asyncio.run(runner.status())
            if args.json:
                print(json.dumps(rows, indent=1))
            else:
                _print_status(rows)
            return 0
        outcome = asyncio.run(_up(runner, args))
    except LeaseBusy as exc:
        print(f"agentctl migrate: {exc}", file=sys.stderr)
        return 3
    except MigrationError as exc:
        print(f"agentctl migrate: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(outcome, indent=1))
    elif outcome["dry_run"]:
        pending = outcome["pending"]
        print("nothing to apply" if not pending else "would apply: " + ", ".join(pending))
        if pending:
            print(DRY_RUN_NOTE, file=sys.stderr)
    else:
        applied = outcome["applied"]
        print(
            "nothing to apply"
            if not applied
            else "applied: "
            + ", ".join(
                f"{a['number']:04d} {a['name']} ({a['documents']} documents)" for a in applied
            )
        )
    return 0
