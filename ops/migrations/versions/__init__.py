"""The numbered migrations, one module each: ``m0001_<name>.py`` exporting ``MIGRATION``.

A module's number is its order; applied numbers are recorded in Firestore (``migrations/0001``),
so a number is never reused or renumbered once released.
"""

from __future__ import annotations

import importlib
import pkgutil
import re

from ops.migrations.runner import Migration

_MODULE = re.compile(r"^m(\d{4})_\w+$")


def all_migrations() -> list[Migration]:
    """Every migration of this release, in order; a module whose number disagrees is an error."""
    found: list[Migration] = []
    for info in pkgutil.iter_modules(__path__):
        match = _MODULE.match(info.name)
        if match is None:
            continue
        migration: Migration = importlib.import_module(f"{__name__}.{info.name}").MIGRATION
        if migration.number != int(match.group(1)):
            raise RuntimeError(f"{info.name} declares number {migration.number}")
        found.append(migration)
    return sorted(found, key=lambda m: m.number)
