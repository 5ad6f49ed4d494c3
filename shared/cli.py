"""``agentctl``: the operator command line (one CLI for every operator task)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import Any

from shared.auth.principal import ALL_SCOPES
from shared.settings import get_settings


def _stack(args: argparse.Namespace) -> int:
    # The stack lives in `emulator/`, which `shared` never imports: run it as its own module.
    os.execv(sys.executable, [sys.executable, "-m", "emulator.stack", args.action])  # noqa: S606
    return 0  # pragma: no cover - execv does not return


def _token(args: argparse.Namespace) -> int:
    from shared.auth import devtokens

    settings = get_settings()
    if args.service_account:
        if not args.audience:
            print("agentctl token: --service-account needs --audience URL", file=sys.stderr)
            return 2
        print(devtokens.invoker_token(settings, args.service_account, args.audience, args.ttl))
    else:
        print(devtokens.local_token(settings, args.user, ttl_s=args.ttl))
    return 0


def _key_store() -> Any:
    from shared.auth.apikeys import ApiKeyStore
    from shared.memorystore import Memorystore
    from shared.stores.firestore import make_client

    settings = get_settings()
    return ApiKeyStore(make_client(settings), Memorystore(settings), settings.api_key_cache_s)


def _keys(args: argparse.Namespace) -> int:
    async def run() -> int:
        store = _key_store()
        if args.action == "create":
            plaintext, record = await store.create(
                args.name,
                subject=args.subject,
                scopes=tuple(args.scope or ALL_SCOPES),
                tier=args.tier,
            )
            print(f"key id:  {record.key_id}\nsubject: {record.subject}\ntier:    {record.tier}")
            print(f"scopes:  {', '.join(record.scopes)}\n\n{plaintext}\n")
            print("Store the key now: only its hash is kept.", file=sys.stderr)
        elif args.action == "list":
            rows = sorted(await store.list_keys(), key=lambda k: k.created_at)
            print(f"{'ID':12}  {'NAME':20}  {'SUBJECT':24}  {'TIER':9}  {'SCOPES':22}  STATUS")
            for key in rows:
                status = f"revoked {key.revoked_at[:19]}" if key.revoked_at else "active"
                print(
                    f"{key.key_id:12}  {key.name[:20]:20}  {key.subject[:24]:24}  "
                    f"{key.tier:9}  {','.join(key.scopes)[:22]:22}  {status}"
                )
        else:
            record = await store.revoke(args.key_id)
            print(f"revoked {record.key_id} ({record.name})")
        return 0

    from shared import errors

    try:
        return asyncio.run(run())
    except errors.AppError as exc:
        print(f"agentctl keys: {exc.message}", file=sys.stderr)
        return 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="agentctl", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    stack = commands.add_parser("stack", help="run the local stack against emulators")
    stack.add_argument("action", choices=["up", "down"])
    stack.set_defaults(run=_stack)

    token = commands.add_parser("token", help="mint an ID token the local stack accepts")
    who = token.add_mutually_exclusive_group(required=True)
    who.add_argument("--user", help="an app user (chat and stream)")
    who.add_argument(
        "--service-account", help="an OIDC token for the scheduled functions (needs --audience)"
    )
    token.add_argument("--audience", help="the scheduled function's URL")
    token.add_argument("--ttl", type=int, default=3600, help="seconds (default 3600)")
    token.set_defaults(run=_token)

    keys = commands.add_parser("keys", help="create, list and revoke API keys")
    key_actions = keys.add_subparsers(dest="action", required=True)
    create = key_actions.add_parser("create")
    create.add_argument("--name", required=True)
    create.add_argument("--subject", help="who owns what the key creates (default key:<id>)")
    create.add_argument("--tier", default="standard", help="rate-limit tier")
    create.add_argument("--scope", action="append", choices=ALL_SCOPES)
    key_actions.add_parser("list")
    revoke = key_actions.add_parser("revoke")
    revoke.add_argument("key_id")
    keys.set_defaults(run=_keys)

    from shared.backup import cli as backup_cli
    from shared.cache_maintenance import cli as cache_cli
    from shared.canary import cli as canary_cli
    from shared.loadtest import cli as loadtest_cli

    backup_cli.add_commands(commands)
    cache_cli.add_commands(commands)
    canary_cli.add_commands(commands)
    loadtest_cli.add_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code: int = args.run(args)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
