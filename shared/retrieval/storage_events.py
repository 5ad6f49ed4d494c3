"""Cloud Storage object events into the corpus (the ``ingest`` function's work).

Eventarc delivers ``google.cloud.storage.object.v1.finalized``, ``…metadataUpdated``,
``…archived`` (a versioned bucket's live version deleted or overwritten) and ``…deleted`` as
CloudEvents (binary mode: ``ce-*`` headers and the object's metadata as the JSON body; structured
mode is read too). Only buckets on ``NGX_INGEST_BUCKETS`` are accepted, and object names are
checked before anything is read. A finalized object (or one whose metadata changed) is read at
the event's own generation and ingested as ``gs://BUCKET/NAME`` with the visibility, tags and
expiry of its custom metadata (``visibility``, ``tags`` comma-separated, ``expires_at`` ISO 8601);
an archived or deleted one is removed — unless a newer generation is stored, since overwriting an
object retires its previous generation and the two events may arrive in either order. A file that
cannot be ingested is acknowledged and reported (a retry would fail the same way); a store that is
down is a 503, which Eventarc retries.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared import errors
from shared.retrieval import sources
from shared.retrieval.corpus import CorpusStore, DocumentRefused, IngestReport

log = logging.getLogger("ngx.ingest")
FINALIZED = "google.cloud.storage.object.v1.finalized"
METADATA_UPDATED = "google.cloud.storage.object.v1.metadataUpdated"
DELETED = "google.cloud.storage.object.v1.deleted"
ARCHIVED = "google.cloud.storage.object.v1.archived"
GONE = (DELETED, ARCHIVED)
EventType = Literal[
    "google.cloud.storage.object.v1.finalized",
    "google.cloud.storage.object.v1.metadataUpdated",
    "google.cloud.storage.object.v1.deleted",
    "google.cloud.storage.object.v1.archived",
]
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MAX_NAME_CHARS = 1024  # Cloud Storage's own limit, in bytes of UTF-8
CLOUDEVENT_TYPES = ("application/json", "application/cloudevents+json")  # binary, structured
ReadObject = Callable[[str, str, int], Awaitable[bytes | None]]


class StorageObject(BaseModel):
    """The part of a Cloud Storage object's metadata an event carries that ingestion uses."""

    model_config = ConfigDict(extra="ignore")

    bucket: str = Field(min_length=3, max_length=222)
    name: str = Field(min_length=1, max_length=MAX_NAME_CHARS)
    generation: int = Field(ge=1, le=2**63 - 1)
    size: int | None = Field(None, ge=0, le=2**63 - 1)
    metadata: dict[str, str] = Field(default_factory=dict, max_length=64)


class StorageEvent(BaseModel):
    """One event: what happened and to which object."""

    type: EventType
    id: str = Field(min_length=1, max_length=256)
    object: StorageObject


def parse(headers: dict[str, str], body: Any) -> StorageEvent:
    """The event of a request (binary or structured CloudEvent), or 422 naming what is wrong."""
    if isinstance(body, dict) and "specversion" in body:  # structured mode
        kind, event_id, data = body.get("type"), body.get("id"), body.get("data")
    else:
        kind, event_id, data = headers.get("ce-type"), headers.get("ce-id"), body
    try:
        event = StorageEvent.model_validate({"type": kind, "id": event_id, "object": data})
    except ValidationError as exc:
        details = [
            {"field": ".".join(str(p) for p in e["loc"]), "issue": e["msg"]} for e in exc.errors()
        ]
        raise errors.ValidationFailed(
            "not a Cloud Storage object event this function takes", details=details[:20]
        ) from None
    name = event.object.name
    if (
        _CONTROL.search(name)
        or name.startswith("/")
        or any(part in ("", ".", "..") for part in name.split("/"))
        or len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_CHARS
    ):
        raise errors.ValidationFailed(
            "the object name is not one ingested (empty, '.' or '..' segments, control characters)",
            details=[{"field": "object.name", "issue": "refused"}],
        )
    return event


def object_metadata(found: dict[str, str]) -> tuple[str, tuple[str, ...], datetime | None]:
    """Visibility, tags and expiry from an object's custom metadata (DocumentRefused if bad)."""
    visibility = found.get("visibility", "public")
    tags = tuple(t.strip() for t in found.get("tags", "").split(",") if t.strip())
    expires = found.get("expires_at")
    try:
        expires_at = datetime.fromisoformat(expires) if expires else None
    except ValueError:
        raise DocumentRefused(f"expires_at {str(expires)[:40]!r} is not an ISO 8601 time") from None
    if expires_at is not None and expires_at.tzinfo is None:
        raise DocumentRefused("expires_at needs a time zone (e.g. 2027-01-01T00:00:00Z)")
    return visibility, tags, expires_at


class EventIngestion:
    """Applies storage events to the corpus; ``publish`` rebuilds the lexical index when it
    lags the corpus, as after a change (None: vector search only)."""

    def __init__(
        self,
        corpus: CorpusStore,
        buckets: list[str],
        read_object: ReadObject,
        publish: Callable[[], Awaitable[Any]] | None = None,
        defer: Callable[[StorageEvent], Awaitable[str]] | None = None,
        inline_max_bytes: int | None = None,
    ) -> None:
        self._corpus = corpus
        self._defer = defer  # queues a large upload's ingestion as a job; its job id
        self._inline_max_bytes = inline_max_bytes
        self._buckets = set(buckets)
        self._read = read_object
        self._publish = publish
        self._publishing = asyncio.Lock()

    async def handle(self, event: StorageEvent, inline: bool = False) -> dict[str, Any]:
        """Ingest or remove the event's object; the outcome as a report. An upload larger than
        ``inline_max_bytes`` is queued for the worker instead (``inline``: this is that job)."""
        found = event.object
        if found.bucket not in self._buckets:
            raise errors.PermissionDenied(f"bucket {found.bucket[:64]!r} is not ingested here")
        uri = f"gs://{found.bucket}/{found.name}"
        report = IngestReport()
        outcome: dict[str, Any] = {"uri": uri, "generation": found.generation}
        if self._deferred(event, inline):
            assert self._defer is not None
            job_id = await self._defer(event)
            log.info("large upload queued", extra={"uri": uri, "job_id": job_id})
            return {**outcome, "outcome": "queued", "job_id": job_id}
        if event.type in GONE:
            await self._corpus.remove(uri, report, found.generation)
        else:
            try:
                sources.kind_of(found.name)
                if found.size is not None and found.size > sources.MAX_PDF_BYTES:
                    raise DocumentRefused(f"{found.size:,} bytes; too large to ingest")
                visibility, tags, expires_at = object_metadata(found.metadata)
                data = await self._read(found.bucket, found.name, found.generation)
                if data is None:  # this generation is gone: a newer one has its own event
                    report.stale += 1
                else:
                    document = await asyncio.to_thread(
                        sources.document, uri, data, visibility, tags, expires_at
                    )
                    await self._corpus.ingest(document, report, found.generation)
            except DocumentRefused as exc:
                log.warning("object not ingested", extra={"uri": uri, "why": str(exc)})
                return {**outcome, "outcome": "skipped", "reason": str(exc)}
        if self._publish is not None:
            # One publish at a time here: events that wait behind one find it covered them
            # (the index names the corpus version it read) — a burst of uploads costs a few
            # builds, not one each.
            async with self._publishing:
                published = await self._publish()
            if published is not None:
                outcome["index_version"] = published.version
        outcome["outcome"] = _outcome(report)
        outcome["chunks"] = report.chunks
        return outcome

    def _deferred(self, event: StorageEvent, inline: bool) -> bool:
        size, limit = event.object.size, self._inline_max_bytes
        return (
            not inline
            and self._defer is not None
            and event.type not in GONE
            and size is not None
            and limit is not None
            and size > limit
        )


def _outcome(report: IngestReport) -> str:
    for name in ("added", "replaced", "removed", "unchanged", "stale"):
        if getattr(report, name):
            return name
    return "absent"  # a deletion of something never ingested


class CloudStorageReader:
    """Reads one generation of an object through ``google-cloud-storage`` (in a worker thread);
    None when that generation no longer exists."""

    def __init__(self) -> None:
        self._client: Any = None

    def _read(self, bucket: str, name: str, generation: int) -> bytes | None:
        from google.api_core import exceptions

        self._connect()
        blob = self._client.bucket(bucket).blob(name, generation=generation)
        try:
            data: bytes = blob.download_as_bytes()
        except exceptions.NotFound:
            return None
        return data

    async def __call__(self, bucket: str, name: str, generation: int) -> bytes | None:
        return await asyncio.to_thread(self._read, bucket, name, generation)

    def list(self, bucket: str, prefix: str) -> Iterator[Any]:
        """The objects under ``prefix`` (their names, generations and metadata), page by page."""
        self._connect()
        yield from self._client.list_blobs(bucket, prefix=prefix)

    def _connect(self) -> None:
        if self._client is None:
            from google.cloud import storage  # type: ignore[attr-defined]

            self._client = storage.Client()
