"""``agentctl keys create|list|revoke``: API keys, kept as SHA-256 hashes with scopes and a tier."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from dataclasses import asdict
from typing import Any

from ops.settings import get_ops_settings
from ops.ui import DRY_RUN_NOTE, add_yes
from shared import errors
from shared.auth.principal import ALL_SCOPES, DEFAULT_KEY_SCOPES, is_scope


def add_commands(commands: Any) -> None:
    keys = commands.add_parser("keys", help="create, list and revoke API keys")
    key_actions = keys.add_subparsers(dest="action", required=True)
    create = key_actions.add_parser("create")
    create.add_argument("--name", required=True)
    create.add_argument("--subject", help="who owns what the key creates (default key:<id>)")
    create.add_argument("--tier", default="standard", help="rate-limit tier")
    create.add_argument(
        "--scope",
        action="append",
        type=_scope,
        help=f"repeatable: {', '.join(ALL_SCOPES)}, handoffs (support staff) or a tool scope "
        "(tools:NAME)",
    )
    listing = key_actions.add_parser("list")
    listing.add_argument("--json", action="store_true", help="as JSON")
    revoke = key_actions.add_parser("revoke")
    revoke.add_argument("key_id")
    add_yes(revoke, "revoke the key")
    keys.set_defaults(run=main)


def _scope(value: str) -> str:
    if not is_scope(value):
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a scope: {', '.join(ALL_SCOPES)} or tools:NAME"
        )
    return value


def _key_store() -> Any:
    from shared.auth.apikeys import ApiKeyStore
    from shared.memorystore import Memorystore
    from shared.stores.firestore import make_client

    settings = get_ops_settings()
    return ApiKeyStore(make_client(settings), Memorystore(settings), settings.api_key_cache_s)


async def _run(args: argparse.Namespace) -> int:
    store = _key_store()
    if args.action == "create":
        plaintext, record = await store.create(
            args.name,
            subject=args.subject,
            scopes=tuple(args.scope or DEFAULT_KEY_SCOPES),
            tier=args.tier,
        )
        print(f"key id:  {record.key_id}\nsubject: {record.subject}\ntier:    {record.tier}")
        print(f"scopes:  {', '.join(record.scopes)}\n\n{plaintext}\n")
        print("Store the key now: only its hash is kept.", file=sys.stderr)
    elif args.action == "list":
        rows = sorted(await store.list_keys(), key=lambda k: k.created_at)
        if args.json:
            print(json.dumps([asdict(key) for key in rows], indent=1))
            return 0
        print(f"{'ID':12}  {'NAME':20}  {'SUBJECT':24}  {'TIER':9}  {'SCOPES':22}  STATUS")
        for key in rows:
            status = f"revoked {key.revoked_at[:19]}" if key.revoked_at else "active"
            print(
                f"{key.key_id:12}  {key.name[:20]:20}  {key.subject[:24]:24}  "
                f"{key.tier:9}  {','.join(key.scopes)[:22]:22}  {status}"
            )
    elif not args.yes:
        record = await store.get(args.key_id)
        print(f"would revoke {record.key_id} ({record.name}, subject {record.subject})")
        print(DRY_RUN_NOTE, file=sys.stderr)
    else:
        record = await store.revoke(args.key_id)
        print(f"revoked {record.key_id} ({record.name})")
    return 0


def main(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_run(args))
    except errors.AppError as exc:
        print(f"agentctl keys: {exc.message}", file=sys.stderr)
        return 1
