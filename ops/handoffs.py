"""``agentctl handoff list|reply|close``: support staff take conversations over from the agent.

``list`` shows open hand-offs (or those of one ``--status``), oldest request first. ``reply``
stores a person's message in the conversation and shows it on the user's open sessions at once;
``close`` gives the conversation back to the agent. Both are dry runs unless ``--yes``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from ops.settings import get_ops_settings
from ops.ui import DRY_RUN_NOTE, add_yes
from shared import errors, web

OPERATOR = "operator:agentctl"  # who replied, when an operator answers from the command line


def add_commands(commands: Any) -> None:
    handoff = commands.add_parser("handoff", help="conversations handed to a person")
    actions = handoff.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="open hand-offs, oldest first")
    listing.add_argument("--status", choices=("pending", "active", "closed"))
    listing.add_argument("--json", action="store_true", help="as JSON")
    reply = actions.add_parser("reply", help="answer the user as a person")
    reply.add_argument("conversation_id")
    reply.add_argument("text")
    reply.add_argument("--as", dest="operator", default=OPERATOR, help="who is replying")
    add_yes(reply, "send the reply")
    close = actions.add_parser("close", help="give the conversation back to the agent")
    close.add_argument("conversation_id")
    add_yes(close, "close the hand-off")
    handoff.set_defaults(run=main)


async def _run(args: argparse.Namespace) -> int:
    from shared.contracts import HandoffQuery, OperatorReply
    from shared.handoffs import HandoffService
    from shared.memorystore import Memorystore
    from shared.stores.firestore import make_client

    settings = get_ops_settings()
    store = Memorystore(settings)
    db = make_client(settings)
    service = HandoffService(db, store, settings)
    try:
        if args.action == "list":
            query = web.validate(HandoffQuery, {"status": args.status} if args.status else {})
            items = await service.list(query.status)
            if args.json:
                print(json.dumps([i.model_dump(mode="json") for i in items], indent=1))
            for item in [] if args.json else items:
                h = item.handoff
                print(
                    f"{item.conversation_id}  {h.status:7}  {h.reason:14}  "
                    f"{h.requested_at:%Y-%m-%d %H:%M}  {item.owner}  {item.title[:60]!r}"
                )
            return 0
        if args.action == "reply":
            text = web.validate(OperatorReply, {"text": args.text}).text
            if not args.yes:
                await service.require_open(args.conversation_id)
                print(f"would send to {args.conversation_id}: {text!r}")
                print(DRY_RUN_NOTE, file=sys.stderr)
                return 0
            sent = await service.reply(args.conversation_id, args.operator, text)
            print(f"sent {sent.message_id} to {sent.conversation_id}")
            return 0
        if not args.yes:
            await service.require_open(args.conversation_id)
            print(f"would close the hand-off of {args.conversation_id}")
            print(DRY_RUN_NOTE, file=sys.stderr)
            return 0
        closed = await service.close(args.conversation_id)
        print(f"closed the hand-off of {closed.conversation_id}: the agent answers it again")
        return 0
    finally:
        await store.close()
        db.close()


def main(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_run(args))
    except errors.AppError as exc:
        print(f"agentctl handoff: {exc.message}", file=sys.stderr)
        return 1
