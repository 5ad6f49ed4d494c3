"""``agentctl backup run|list|verify|restore|prune``: the backup function's code, from a terminal.

Restore and prune only report what they would do unless ``--yes`` is given. ``--json`` prints the
same report the HTTP function answers.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
from typing import Any

from ops.settings import get_ops_settings
from ops.ui import ProgressLine, add_yes
from shared import errors
from shared.auth.invoker import Invoker
from shared.backup.service import BackupCall, perform


def add_commands(commands: Any) -> None:
    backup = commands.add_parser("backup", help="logical Firestore backups")
    actions = backup.add_subparsers(dest="action", required=True)

    def action(name: str, help_text: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = actions.add_parser(name, help=help_text)
        parser.add_argument(
            "--sink", help="a configured destination's name (default: NGX_BACKUP_SINK)"
        )
        parser.add_argument("--json", action="store_true", help="print the JSON report")
        return parser

    run = action("run", "back up the configured collections at one read time")
    run.add_argument("--collection", action="append", dest="collections")
    action("list", "list backups, newest first")
    verify = action("verify", "recompute checksums and decode every record")
    verify.add_argument("backup_id", nargs="?", help="default: the newest complete backup")
    restore = action("restore", "restore a backup (a dry run unless --yes)")
    restore.add_argument("backup_id")
    restore.add_argument("--target-project")
    restore.add_argument("--target-database")
    restore.add_argument("--prefix", default="", help="prepended to top-level collection ids")
    restore.add_argument("--mode", choices=["only-missing", "overwrite"], default="only-missing")
    restore.add_argument("--force", action="store_true", help="skip damaged shards")
    add_yes(restore, "write the documents")
    prune = action("prune", "delete old backups (a dry run unless --yes)")
    prune.add_argument("--keep-last", type=int)
    prune.add_argument("--keep-days", type=int)
    add_yes(prune, "delete the old backups")
    backup.set_defaults(run=main)


def _call(args: argparse.Namespace) -> dict[str, Any]:
    body: dict[str, Any] = {"action": args.action}
    if args.sink:
        body["sink"] = args.sink
    if args.action == "run" and args.collections:
        body["collections"] = args.collections
    if args.action in ("verify", "restore") and args.backup_id:
        body["backup_id"] = args.backup_id
    if args.action == "restore":
        body |= {
            "target_project": args.target_project,
            "target_database": args.target_database,
            "prefix": args.prefix,
            "mode": args.mode,
            "force": args.force,
            "dry_run": not args.yes,
        }
    if args.action == "prune":
        body |= {"keep_last": args.keep_last, "keep_days": args.keep_days, "dry_run": not args.yes}
    return body


def _print(report: dict[str, Any]) -> None:
    action = report["action"]
    if action == "list":
        print(f"{'BACKUP':28}  {'STATE':10}  {'READ TIME':28}  {'DOCS':>9}  {'BYTES':>11}")
        for b in report["backups"]:
            print(
                f"{b['backup_id']:28}  {b['state']:10}  {b.get('read_time', '-'):28}  "
                f"{b.get('documents', 0):>9,}  {b.get('bytes', 0):>11,}"
            )
        return
    if action == "verify":
        verdict = "OK" if report["ok"] else "DAMAGED"
        print(
            f"{report['backup_id']}: {verdict} — {report['documents_checked']:,} of "
            f"{report['documents_expected']:,} documents decoded, {report['shards']} shards"
        )
        for problem in report["problems"]:
            print(f"  {problem['shard']}: {problem['problem']}")
        return
    if action == "restore" and report["dry_run"]:
        print(
            f"dry run: would restore {report['documents']:,} documents of {report['backup_id']} "
            f"into {report['target']} (prefix {report['prefix']!r}, mode {report['mode']}); "
            "add --yes to write"
        )
        return
    if action == "prune" and report["dry_run"]:
        print(
            f"dry run: would delete {len(report['deleted'])} backup(s): "
            f"{', '.join(report['deleted']) or 'none'}; keep {len(report['kept'])}; add --yes"
        )
        return
    width = max(len(k) for k in report)
    for key, value in report.items():
        print(
            f"{key:{width}}  {value if not isinstance(value, dict | list) else json.dumps(value)}"
        )


def main(args: argparse.Namespace) -> int:
    settings = get_ops_settings()
    progress = ProgressLine()
    try:
        call = BackupCall.model_validate(_call(args))
        invoker = Invoker(f"agentctl:{getpass.getuser()}", "operator")
        report = asyncio.run(perform(settings, call, invoker, progress))
    except errors.AppError as exc:
        progress.close()
        print(f"agentctl backup {args.action}: {exc.message}", file=sys.stderr)
        for detail in exc.details[:20]:
            print(f"  {detail}", file=sys.stderr)
        return 1
    except ValueError as exc:  # pydantic's ValidationError
        progress.close()
        print(f"agentctl backup {args.action}: {exc}", file=sys.stderr)
        return 2
    progress.close()
    if args.json:
        print(json.dumps(report, indent=1, default=str))
    else:
        _print(report)
    if report["action"] == "verify" and not report["ok"]:
        return 1
    return 0
