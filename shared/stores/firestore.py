"""The Firestore ``AsyncClient`` of this process, on the emulator when one is configured."""

from __future__ import annotations

import os
from functools import lru_cache
from types import SimpleNamespace
from typing import Any

from shared.settings import Settings


def make_client(settings: Settings) -> Any:
    """A Firestore client for the configured project and database.

    The client library discovers the emulator only through ``FIRESTORE_EMULATOR_HOST``; the setting
    of the same name is exported here, in the one place that builds clients.
    """
    if settings.firestore_emulator_host:
        os.environ["FIRESTORE_EMULATOR_HOST"] = settings.firestore_emulator_host
    from google.cloud.firestore_v1.async_client import AsyncClient

    return AsyncClient(project=settings.project_id, database=settings.firestore_database)


@lru_cache(maxsize=1)
def raw_types() -> SimpleNamespace:
    """The raw protobuf classes behind the client's ``Document`` and ``Write`` types."""
    from google.cloud.firestore_v1.types import document, write

    return SimpleNamespace(Document=document.Document.pb(), Write=write.Write.pb())
