"""`agentctl` keeps its conventions: one dry-run convention (``--yes``) on every command that
changes something, ``--json`` on every listing and status, and ``--version``."""

from __future__ import annotations

import argparse
import io
import sys
from collections.abc import Iterator

import pytest

from ops.cli import build_parser, main
from ops.ui import ProgressLine

# Commands that change something outside agentctl: a dry run unless --yes.
DESTRUCTIVE = {
    "backup restore",
    "backup prune",
    "cache apply",
    "cache invalidate",
    "canary start",
    "canary promote",
    "canary abort",
    "keys revoke",
    "users erase",
    "migrate up",
    "handoff reply",
    "handoff close",
}
# Commands that list or report state: --json for scripts.
LISTINGS = {
    "backup list",
    "canary status",
    "keys list",
    "handoff list",
    "report",
    "migrate status",
    "functions",
    "preflight",
}


def commands(
    parser: argparse.ArgumentParser, prefix: str = ""
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """Every leaf command and its parser, by its full name (``canary start``)."""
    subparsers = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subparsers:
        yield prefix.strip(), parser
        return
    for name, child in subparsers[0].choices.items():
        yield from commands(child, f"{prefix} {name}")


def options(parser: argparse.ArgumentParser) -> set[str]:
    return {flag for action in parser._actions for flag in action.option_strings}


TREE = dict(commands(build_parser()))


def test_the_lists_name_real_commands() -> None:
    assert set(TREE) >= (DESTRUCTIVE | LISTINGS)


@pytest.mark.parametrize("name", sorted(TREE))
def test_each_command_follows_the_conventions(name: str) -> None:
    flags = options(TREE[name])
    assert "--dry-run" not in flags, "one convention: a dry run is the default, --yes acts"
    assert ("--yes" in flags) == (name in DESTRUCTIVE)
    if name in LISTINGS:
        assert "--json" in flags


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.startswith("agentctl ")


class Terminal(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


@pytest.mark.parametrize("tty", [True, False])
def test_progress_redraws_on_a_terminal_and_stays_silent_elsewhere(
    monkeypatch: pytest.MonkeyPatch, tty: bool
) -> None:
    stream = Terminal(tty)
    monkeypatch.setattr(sys, "stderr", stream)
    line = ProgressLine()
    for done in (500, 1000, 1500):
        line("restore", done)
    line.close()
    if tty:
        assert stream.getvalue() == (
            "\rrestore: 500 documents\rrestore: 1,000 documents\rrestore: 1,500 documents\n"
        )
    else:
        assert stream.getvalue() == ""
