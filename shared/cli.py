"""``agentctl``: the operator command line (one CLI for every operator task)."""

from __future__ import annotations

import argparse
import os
import sys


def _stack(args: argparse.Namespace) -> int:
    # The stack lives in `emulator/`, which `shared` never imports: run it as its own module.
    os.execv(sys.executable, [sys.executable, "-m", "emulator.stack", args.action])  # noqa: S606
    return 0  # pragma: no cover - execv does not return


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="agentctl", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    stack = commands.add_parser("stack", help="run the local stack against emulators")
    stack.add_argument("action", choices=["up", "down"])
    stack.set_defaults(run=_stack)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code: int = args.run(args)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
