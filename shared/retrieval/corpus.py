"""The corpus in Firestore: documents, their chunks with embeddings, and the corpus version.

``corpus_documents/{doc_id}`` (``doc_id`` a hash of the source URI) keeps the document's URI,
title, content hash, visibility, tags, dates and chunk count; ``corpus_chunks/{doc_id}_{n}`` keeps
each chunk's text, section and embedding (a Firestore vector) with the document's visibility,
tags and dates copied, so a vector search can pre-filter on them. ``config/corpus`` holds the
corpus version, raised by every change (cached retrieval results and answers name it).

Replacing a document is one batch: its chunks written over, the ones it no longer has deleted,
its record and the version updated — readers see the old document or the new one, never a mix.
A document whose content hash is unchanged is not touched at all (no embedding call, no write).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import re
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeVar

from shared.contracts import CORPUS_TAG
from shared.retrieval.chunking import Chunk
from shared.retrieval.embeddings import Embedder
from shared.retrieval.names import CHUNKS, DOCUMENTS, VERSION_DOC

__all__ = ["CHUNKS", "DOCUMENTS", "CorpusStore", "IngestReport", "SourceDocument"]

T = TypeVar("T")
TOMBSTONE_TTL = timedelta(days=35)  # past the noncurrent versions' 30-day lifecycle
ATTEMPTS = 3  # a record written by a concurrent event is read again, this many times at most
MAX_CHUNKS = 450  # one batch (500 writes) holds a document's chunks, its record and the version
# public, a tenant, or one owner (a subject: ``user:…`` for an ID token, ``key:…`` for an API key).
VISIBILITY = re.compile(r"^(public|tenant:[A-Za-z0-9_-]{1,64}|(user|key):[^\x00-\x1f]{1,128})\Z")
TAG = re.compile(CORPUS_TAG)  # matched whole (fullmatch)


class VectorIndex(Protocol):
    """A vector index kept beside Firestore (Vertex AI Vector Search): datapoints by chunk id."""

    async def upsert(
        self, chunks: Sequence[tuple[str, list[float], str, Sequence[str]]]
    ) -> None: ...

    async def remove(self, chunk_ids: Sequence[str]) -> None: ...


class DocumentRefused(ValueError):
    """A document that cannot be ingested as it is (the message says why)."""


@dataclass(frozen=True)
class SourceDocument:
    """A document to ingest: where it comes from and what it says."""

    uri: str
    title: str
    chunks: Sequence[Chunk]
    content_hash: str
    visibility: str = "public"
    tags: tuple[str, ...] = ()
    expires_at: datetime | None = None
    updated_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __post_init__(self) -> None:
        if not VISIBILITY.match(self.visibility):
            raise DocumentRefused(
                f"visibility {self.visibility!r} is not public, tenant:NAME or an owner "
                "(user:… or key:…)"
            )
        for tag in self.tags:
            if not TAG.fullmatch(tag):
                raise DocumentRefused(f"tag {tag!r} is not a-z, 0-9, _ or - (32 at most)")
        if len(self.chunks) > MAX_CHUNKS:
            raise DocumentRefused(f"{len(self.chunks)} chunks; at most {MAX_CHUNKS} per document")


def document_id(uri: str) -> str:
    return hashlib.sha256(uri.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def content_hash(title: str, text: str, **metadata: Any) -> str:
    """What decides whether a document changed: its text, title and metadata."""
    material = json.dumps([title, text, metadata], sort_keys=True, default=str)
    return hashlib.sha256(material.encode("utf-8", "surrogatepass")).hexdigest()


def embedding_text(document: SourceDocument, chunk: Chunk) -> str:
    """What is embedded for a chunk: its document's title and section give it context."""
    heading = " — ".join(part for part in (document.title, chunk.section) if part)
    return f"{heading}\n{chunk.text}" if heading else chunk.text


@dataclass
class IngestReport:
    """What an ingestion did: documents added, replaced, unchanged, removed, and chunks written."""

    added: int = 0
    replaced: int = 0
    unchanged: int = 0
    removed: int = 0
    stale: int = 0  # events about an older generation than the one stored: nothing done
    chunks: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    index: dict[str, Any] | None = None  # the lexical index published after it, if any


class CorpusStore:
    """Writes and removes corpus documents; one per process."""

    def __init__(self, db: Any, embedder: Embedder, index: VectorIndex | None = None) -> None:
        self._db = db
        self._embedder = embedder
        self._index = index  # Vertex AI Vector Search, when it is the vector backend

    async def ingest(
        self,
        document: SourceDocument,
        report: IngestReport,
        generation: int | None = None,
        seen: Any = None,
    ) -> None:
        """Add or replace one document (nothing happens when its content hash is unchanged, or
        when ``generation`` — a Cloud Storage object's — is older than the stored one's).

        The record is written on the condition that nobody changed it since it was read
        (concurrent events about one object); a lost race is run again from the read."""
        for _ in range(ATTEMPTS - 1):
            with contextlib.suppress(*_raced()):
                await self._ingest_once(document, report, generation, seen)
                return
            seen = None  # read again
        await self._ingest_once(document, report, generation)

    async def ingest_many(
        self,
        documents: AsyncIterator[tuple[SourceDocument, int | None]],
        report: IngestReport,
        concurrency: int = 8,
        failed: Callable[[str, Exception], None] | None = None,
    ) -> None:
        """Ingest documents with up to ``concurrency`` in flight: one document's embedding call
        overlaps another's Firestore writes, and the records of each group of documents are read
        in one round trip. Each stays atomic on its own; a document that fails is passed to
        ``failed`` (or raised) and the others go on."""
        slots = asyncio.Semaphore(concurrency)
        errors: list[BaseException] = []

        async def one(document: SourceDocument, generation: int | None, seen: Any) -> None:
            try:
                await self.ingest(document, report, generation, seen)
            except Exception as exc:
                try:
                    if failed is None:
                        raise
                    failed(document.uri, exc)
                except Exception as kept:  # not the caller's to skip: the run fails with it
                    errors.append(kept)
            finally:
                slots.release()

        async with asyncio.TaskGroup() as group_of_tasks:
            async for group in _groups(documents, concurrency * 4):
                if errors:
                    break
                refs = [
                    self._db.collection(DOCUMENTS).document(document_id(d.uri)) for d, _ in group
                ]
                seen = {s.reference.path: s async for s in self._db.get_all(refs)}
                for (document, generation), ref in zip(group, refs, strict=True):
                    await slots.acquire()
                    group_of_tasks.create_task(one(document, generation, seen.get(ref.path)))
        if errors:
            raise errors[0]

    async def _ingest_once(
        self,
        document: SourceDocument,
        report: IngestReport,
        generation: int | None,
        seen: Any = None,
    ) -> None:
        from google.cloud.firestore_v1 import DELETE_FIELD
        from google.cloud.firestore_v1.vector import Vector

        doc_id = document_id(document.uri)
        record_ref = self._db.collection(DOCUMENTS).document(doc_id)
        existing = seen if seen is not None else await record_ref.get()
        old = existing.to_dict() if existing.exists else None
        if old is not None and _newer(old, generation):
            report.stale += 1
            return
        if old is not None and old.get("removed"):
            old = None  # a removed object's tombstone: this newer generation starts afresh
        if old is not None and old.get("content_hash") == document.content_hash:
            if self._index is not None and old.get("indexed") is False:
                await self._reindex(doc_id, record_ref, existing)  # its upsert failed before
            if generation is not None and old.get("generation") != generation:
                # The same bytes uploaded again: its deletion events now name the new generation.
                unchanged = self._db.batch()
                unchanged.update(
                    record_ref, {"generation": generation}, option=self._since(existing)
                )
                await unchanged.commit()
            report.unchanged += 1
            return
        vectors = await self._embedder.embed(
            [embedding_text(document, c) for c in document.chunks], "RETRIEVAL_DOCUMENT"
        )
        shared = {
            "doc_id": doc_id,
            "uri": document.uri,
            "title": document.title,
            "visibility": document.visibility,
            "tags": list(document.tags),
            "updated_at": document.updated_at,
            "expires_at": document.expires_at,
            **_owner(document.visibility),
        }
        ids = [f"{doc_id}_{chunk.index:04d}" for chunk in document.chunks]
        stale = [f"{doc_id}_{n:04d}" for n in range(len(ids), int((old or {}).get("chunks", 0)))]
        if self._index is not None:  # before their chunks go: a failed commit is retried whole
            await self._index.remove(stale)
        batch = self._db.batch()
        chunks = self._db.collection(CHUNKS)
        for chunk, vector in zip(document.chunks, vectors, strict=True):
            batch.set(
                chunks.document(f"{doc_id}_{chunk.index:04d}"),
                {
                    **shared,
                    "index": chunk.index,
                    "section": chunk.section,
                    "text": chunk.text,
                    "embedding": Vector(vector),
                },
            )
        for chunk_id in stale:
            batch.delete(chunks.document(chunk_id))
        record: dict[str, Any] = {
            **shared,
            "content_hash": document.content_hash,
            "chunks": len(document.chunks),
            "indexed": self._index is None,  # set once Vector Search holds its vectors
        }
        if generation is not None:
            record["generation"] = generation
        if not existing.exists:
            batch.create(record_ref, record)
        else:
            for gone in ("owner", "removed", "expire_at"):  # a tombstone's, or made public
                record.setdefault(gone, DELETE_FIELD)
            batch.update(record_ref, record, option=self._since(existing))
        self._bump(batch)
        result = await batch.commit()
        if self._index is not None:  # after: the vectors of what was committed, not of a loser
            rows = [
                (i, v, document.visibility, document.tags)
                for i, v in zip(ids, vectors, strict=True)
            ]
            await self._index.upsert(rows)
            committed = result[len(ids) + len(stale)].update_time  # the record's write
            await record_ref.update(
                {"indexed": True}, option=self._db.write_option(last_update_time=committed)
            )
        report.chunks += len(document.chunks)
        if old is None:
            report.added += 1
        else:
            report.replaced += 1

    async def remove(self, uri: str, report: IngestReport, generation: int | None = None) -> None:
        """Remove a document and its chunks (a deleted source object) — unless a newer
        ``generation`` of it is stored: overwriting an object deletes its previous generation."""
        for _ in range(ATTEMPTS - 1):
            with contextlib.suppress(*_raced()):
                await self._remove_once(uri, report, generation)
                return
        await self._remove_once(uri, report, generation)

    async def _remove_once(self, uri: str, report: IngestReport, generation: int | None) -> None:
        doc_id = document_id(uri)
        record_ref = self._db.collection(DOCUMENTS).document(doc_id)
        existing = await record_ref.get()
        if not existing.exists:
            return
        if _newer(existing.to_dict() or {}, generation):
            report.stale += 1
            return
        stored = existing.to_dict() or {}
        if stored.get("removed"):
            return  # already a tombstone
        ids = [f"{doc_id}_{n:04d}" for n in range(int(stored.get("chunks", 0)))]
        if self._index is not None:  # before the chunks: a failed delete is retried whole
            await self._index.remove(ids)
        batch = self._db.batch()
        for chunk_id in ids:
            batch.delete(self._db.collection(CHUNKS).document(chunk_id))
        if generation is None:
            batch.delete(record_ref, option=self._since(existing))
        else:
            # A tombstone: an event about this generation or an older one, arriving late (a
            # retried finalize of a versioned bucket's noncurrent generation), changes nothing.
            tombstone = {"uri": uri, "generation": generation, "removed": True}
            tombstone["expire_at"] = datetime.now(UTC) + TOMBSTONE_TTL
            if stored.get("owner"):  # erased with its owner, as the document would have been
                tombstone["owner"] = stored["owner"]
            batch.set(record_ref, tombstone)
        self._bump(batch)
        await batch.commit()
        report.removed += 1

    async def _reindex(self, doc_id: str, record_ref: Any, existing: Any) -> None:
        """Upsert a committed document's vectors whose earlier upsert failed."""
        from google.cloud.firestore_v1.base_query import FieldFilter

        assert self._index is not None
        rows = []
        query = self._db.collection(CHUNKS).where(filter=FieldFilter("doc_id", "==", doc_id))
        async for chunk in query.stream():
            data = chunk.to_dict() or {}
            rows.append(
                (chunk.id, list(data["embedding"]), data["visibility"], data.get("tags") or ())
            )
        await self._index.upsert(rows)
        await record_ref.update({"indexed": True}, option=self._since(existing))

    def _since(self, snapshot: Any) -> Any:
        """The precondition that the record is as it was read."""
        return self._db.write_option(last_update_time=snapshot.update_time)

    async def version(self) -> int:
        """The corpus version (0 before anything was ingested)."""
        snapshot = await self._db.collection(VERSION_DOC[0]).document(VERSION_DOC[1]).get()
        return int((snapshot.to_dict() or {}).get("version", 0)) if snapshot.exists else 0

    def _bump(self, batch: Any) -> None:
        batch.set(*version_write(self._db), merge=True)


def version_write(db: Any) -> tuple[Any, dict[str, Any]]:
    """The document and fields that raise the corpus version (merged)."""
    from google.cloud.firestore_v1 import Increment

    ref = db.collection(VERSION_DOC[0]).document(VERSION_DOC[1])
    return ref, {"version": Increment(1), "updated_at": datetime.now(UTC)}


async def bump_version(db: Any) -> None:
    """Raise the corpus version on its own (a change made outside an ingestion batch)."""
    ref, fields = version_write(db)
    await ref.set(fields, merge=True)


async def _groups(items: AsyncIterator[T], size: int) -> AsyncIterator[list[T]]:
    """``items`` in lists of up to ``size``."""
    group: list[T] = []
    async for item in items:
        group.append(item)
        if len(group) == size:
            yield group
            group = []
    if group:
        yield group


def _raced() -> tuple[type[Exception], ...]:
    """What a write whose precondition failed raises: another writer came first."""
    from google.api_core.exceptions import AlreadyExists, Conflict, FailedPrecondition

    return (AlreadyExists, Conflict, FailedPrecondition)


def _newer(record: dict[str, Any], generation: int | None) -> bool:
    """Whether the stored document comes from a newer object generation than ``generation`` —
    or a removal of that very generation or a newer one (a tombstone)."""
    stored = record.get("generation")
    if generation is None or stored is None:
        return False
    return int(stored) >= generation if record.get("removed") else int(stored) > generation


def _owner(visibility: str) -> dict[str, str]:
    """A user's private document names its owner, as every owned document does (for erasure)."""
    return {"owner": visibility} if visibility.startswith(("user:", "key:")) else {}
