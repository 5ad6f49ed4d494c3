"""``agentctl``: the operator command line (one CLI for every operator task).

Each command group lives in its own module with an ``add_commands(subparsers)``; the development
commands (``stack``, ``token``) come from the local stack's tree when it is present (see
`ops.development`), so the ops image, which lacks it, still starts and says why they are missing.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from importlib import metadata
from typing import Any

from ops.development import DevelopmentMissing
from ops.development import load as load_development

# Operator command groups, in the order `agentctl --help` lists them.
COMMANDS = (
    "ops.functions",
    "ops.keys",
    "ops.users",
    "ops.handoffs",
    "ops.report",
    "ops.tools",
    "ops.corpus",
    "ops.backup.cli",
    "ops.cache.cli",
    "ops.canary.cli",
    "ops.loadtest.cli",
    "ops.migrations.cli",
    "ops.preflight.cli",
)
DEVELOPMENT_COMMANDS = ("stack", "token")


def version() -> str:
    """The installed package's version, or the source tree's when it is not installed."""
    try:
        return metadata.version("ngx-agent-functions")
    except metadata.PackageNotFoundError:
        return "0+source"


def _missing(problem: DevelopmentMissing) -> Any:
    def run(args: argparse.Namespace) -> int:
        print(f"agentctl {args.command}: {problem}", file=sys.stderr)
        return 2

    return run


def _add_development(commands: Any) -> None:
    try:
        load_development("commands").add_commands(commands)
    except DevelopmentMissing as problem:
        for name in DEVELOPMENT_COMMANDS:
            parser = commands.add_parser(name, help="local development (not in this image)")
            parser.add_argument("rest", nargs=argparse.REMAINDER)
            parser.set_defaults(run=_missing(problem))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="agentctl", description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", action="version", version=f"agentctl {version()}")
    commands = parser.add_subparsers(dest="command", required=True)
    _add_development(commands)
    for module in COMMANDS:
        importlib.import_module(module).add_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code: int = args.run(args)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
