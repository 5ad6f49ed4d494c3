"""``agentctl tools check [FILE]``: validate an agent tools file before it is deployed.

Reads the file as a function would at start (``NGX_TOOLS_FILE`` when no FILE is given) and lists
each tool (kind, scope, whether it needs confirmation, its result cache TTL, where it goes); a
mistake is printed as the start would report it, with exit status 1. Credential variables are
checked only with ``--credentials`` (an operator's shell seldom holds the deployed secrets).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from ops.settings import get_ops_settings
from shared.errors import SettingsError


def add_commands(commands: Any) -> None:
    tools = commands.add_parser("tools", help="the agent's tools file")
    actions = tools.add_subparsers(dest="action", required=True)
    check = actions.add_parser("check", help="validate a tools file and list its tools")
    check.add_argument("file", nargs="?", help="default: NGX_TOOLS_FILE")
    check.add_argument(
        "--credentials", action="store_true", help="also require each credential variable"
    )
    check.add_argument("--json", action="store_true", help="the tools as JSON")
    tools.set_defaults(run=main)


def describe(name: str, tool: Any) -> dict[str, Any]:
    """One declared tool as plain data."""
    return {
        "name": name,
        "kind": tool.kind,
        "scope": tool.scope,
        "confirm": tool.confirm,
        "cache_ttl_s": tool.cache_ttl_s,
        "target": tool.url or f"firestore:{tool.collection}",
        "arguments": sorted(tool.arguments),
    }


def main(args: argparse.Namespace) -> int:
    from shared.agent import config

    settings = get_ops_settings()
    path = args.file or settings.tools_file
    if not path:
        print("agentctl tools check: name a FILE or set NGX_TOOLS_FILE", file=sys.stderr)
        return 2
    saved = dict(os.environ)
    try:
        if not args.credentials:  # a placeholder for each credential: only the shape is checked
            os.environ.update({env: "unchecked" for env in _credential_envs(path)})
        parsed = config.read(path, settings.tool_private_hosts)
    except SettingsError as exc:
        print(f"agentctl tools check: {exc}", file=sys.stderr)
        return 1
    finally:
        os.environ.clear()
        os.environ.update(saved)
    rows = [describe(name, tool) for name, tool in parsed.tools.items()]
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print(f"{'TOOL':20}  {'KIND':16}  {'SCOPE':16}  {'CONFIRM':7}  {'TTL':5}  TARGET")
    for row in rows:
        ttl = str(row["cache_ttl_s"] or "-")
        print(
            f"{row['name']:20}  {row['kind']:16}  {row['scope'] or '-':16}  "
            f"{'yes' if row['confirm'] else 'no':7}  {ttl:5}  {row['target']}"
        )
    print(f"{len(rows)} tools; the file is valid")
    return 0


def _credential_envs(path: str) -> list[str]:
    """The credential variables a tools file names (read leniently: errors come from `read`)."""
    import tomllib

    try:
        with open(path, "rb") as handle:
            raw = tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError):
        return []
    tools = raw.get("tools") if isinstance(raw, dict) else None
    found = []
    for tool in (tools or {}).values() if isinstance(tools, dict) else []:
        credential = tool.get("credential") if isinstance(tool, dict) else None
        env = credential.get("env") if isinstance(credential, dict) else None
        if isinstance(env, str) and env.isidentifier():
            found.append(env)
    return found
