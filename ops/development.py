"""The one door from operations to the development tree (`emulator/`), opened at run time.

`agentctl` offers a few local conveniences that live with the local stack: ``stack``, ``token``
and the private stack of ``loadtest`` without ``--url``. The ops image ships no development code,
so those are looked up here by name when used, and their absence is a clear message rather than an
import error at start. Nothing else in `ops` reaches into `emulator`.
"""

from __future__ import annotations

import importlib
from types import ModuleType

PACKAGE = "emulator"


class DevelopmentMissing(RuntimeError):
    """The command needs the development tree, which this installation (the ops image) lacks."""


def load(module: str) -> ModuleType:
    """``emulator.<module>``, or `DevelopmentMissing` naming what to do instead."""
    try:
        return importlib.import_module(f"{PACKAGE}.{module}")
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.split(".")[0] != PACKAGE:
            raise
        raise DevelopmentMissing(
            "this command needs the development tree (emulator/), which the ops image does not "
            "ship: run it from a clone of the repository"
        ) from None
