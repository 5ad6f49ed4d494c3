"""``agentctl users erase SUBJECT``: erase a user from every store (the right to be forgotten).

A dry run unless ``--yes``: it counts what would go. The erasure itself is recorded in the
ledger that restores honour; running it again finishes an interrupted one and is otherwise harmless.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from ops.settings import get_ops_settings
from ops.ui import DRY_RUN_NOTE, add_yes
from shared import errors

MAX_SUBJECT_CHARS = 256


def add_commands(commands: Any) -> None:
    users = commands.add_parser("users", help="erase a user's data (right to be forgotten)")
    actions = users.add_subparsers(dest="action", required=True)
    erase = actions.add_parser("erase", help="delete everything stored about a subject")
    erase.add_argument("subject", help="as the API names it: user:<uid> or key:<id>")
    erase.add_argument("--json", action="store_true", help="the report as JSON")
    add_yes(erase, "erase the subject")
    users.set_defaults(run=main)


def check_subject(subject: str) -> str:
    """An operator's subject argument, refused when it cannot name anyone."""
    if not subject or len(subject) > MAX_SUBJECT_CHARS or not subject.isprintable():
        raise errors.ValidationFailed(
            f"subject must be 1 to {MAX_SUBJECT_CHARS} printable characters",
            details=[{"field": "subject", "issue": "invalid"}],
        )
    return subject


async def _run(args: argparse.Namespace) -> int:
    from shared.erasure import Eraser
    from shared.memorystore import Memorystore
    from shared.stores.firestore import make_client

    settings = get_ops_settings()
    subject = check_subject(args.subject)
    store = Memorystore(settings)
    db = make_client(settings)
    try:
        report = await Eraser(db, store, settings).erase(subject, dry_run=not args.yes)
    finally:
        await store.close()
        db.close()
    if args.json:
        print(json.dumps(report.as_dict(), indent=1))
    else:
        verb = "would delete" if report.dry_run else "deleted"
        print(
            f"{verb} for {report.subject}: {report.conversations} conversations, "
            f"{report.messages} messages, {report.idempotency_records} idempotency records, "
            f"{report.confirmations} confirmations, {report.corpus_documents} private documents, "
            f"{report.api_keys} API keys, "
            f"{report.memorystore_keys} Memorystore keys"
        )
    if report.dry_run:
        print(DRY_RUN_NOTE, file=sys.stderr)
    return 0


def main(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_run(args))
    except errors.AppError as exc:
        print(f"agentctl users: {exc.message}", file=sys.stderr)
        return 1
