"""``agentctl stack`` and ``agentctl token``: the local stack and its development identity."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any


def add_commands(commands: Any) -> None:
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
    token.add_argument(
        "--scope",
        action="append",
        default=[],
        help="a tool scope the user holds (repeatable), e.g. tools:orders (the `scopes` claim)",
    )
    token.set_defaults(run=_token)


def _stack(args: argparse.Namespace) -> int:
    # Its own process: the stack installs signal handlers and runs until Ctrl-C.
    os.execv(sys.executable, [sys.executable, "-m", "emulator.stack", args.action])  # noqa: S606
    return 0  # pragma: no cover - execv does not return


def _token(args: argparse.Namespace) -> int:
    from emulator import devtokens
    from emulator.settings import get_stack_settings

    settings = get_stack_settings()
    if args.service_account:
        if not args.audience:
            print("agentctl token: --service-account needs --audience URL", file=sys.stderr)
            return 2
        print(devtokens.invoker_token(settings, args.service_account, args.audience, args.ttl))
    else:
        claims = {"scopes": args.scope} if args.scope else {}
        print(devtokens.local_token(settings, args.user, ttl_s=args.ttl, **claims))
    return 0
