"""The manifest of a backup: what it holds and how to check it. Written last, so a backup without
one is incomplete and never restored."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from pydantic import BaseModel, Field

from shared import errors

MANIFEST = "manifest.json"
_ID = re.compile(r"^\d{8}T\d{6}\.\d{3}Z-[0-9a-f]{6}\Z")


class Shard(BaseModel):
    name: str = Field(
        description="object name inside the backup, e.g. conversations/00000.ndjson.zst"
    )
    collection: str
    documents: int
    bytes: int
    uncompressed_bytes: int
    sha256: str


class Manifest(BaseModel):
    format: str
    backup_id: str
    project: str
    database: str
    read_time: str = Field(description="RFC 3339, the single instant every document was read at")
    collections: dict[str, int] = Field(description="documents per top-level collection")
    shards: list[Shard]
    documents: int
    bytes: int
    started_at: datetime
    finished_at: datetime
    duration_s: float
    created_by: str


def new_backup_id(now: datetime, suffix: str) -> str:
    """Sortable by time, to the millisecond: ``20261125T051500.123Z-ab12cd``."""
    at = now.astimezone(UTC)
    return at.strftime("%Y%m%dT%H%M%S") + f".{at.microsecond // 1000:03d}Z-{suffix}"


def check_backup_id(value: str) -> str:
    if not _ID.match(value):
        raise errors.ValidationFailed(
            f"{value[:80]!r} is not a backup id (like 20261125T051500.123Z-ab12cd)",
            details=[{"field": "backup_id", "issue": "malformed"}],
        )
    return value


def created(backup_id: str) -> datetime:
    return datetime.strptime(backup_id[:19], "%Y%m%dT%H%M%S.%f").replace(tzinfo=UTC)
