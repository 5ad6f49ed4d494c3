"""Erasure of a subject — the right to be forgotten — from every store, and the ledger of it.

What a subject leaves behind, and how it is found:

- Firestore: ``conversations`` (``owner``) with their ``messages`` (``owner``; summaries live in
  the conversation), ``idempotency`` records (``owner``), proposed actions awaiting approval
  (``confirmations``, ``owner``), private retrieval documents and their chunks
  (``corpus_documents``, ``corpus_chunks``, ``owner``), ``jobs`` (``owner``) and ``api_keys``
  (``subject``) — the list is `shared.subject_data`'s, which export reads too.
- Memorystore: the keys its requests wrote (cache entries it filled, its stream buffers, shared
  model streams it led), listed in its ``ngx:owned:…`` set; its token budget counters; its rate
  limit counters and those of its API keys; cached copies of its API keys.

The ledger entry ``erasures/{pseudonym}`` (a keyed hash of the subject and the time) is written
first, so an erasure that stops half-way is finished by running it again, and a restore never
brings back a subject erased after the backup was taken (`erased_since`). Backups themselves are
immutable: they age out after ``backup_keep_days`` (see docs/backups.md, "Erasure").
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from shared import pseudonyms, subject_data
from shared.llm.accounting import BUDGET_TTL_S, TokenBudget
from shared.llm.cache import owned_keys
from shared.memorystore import Memorystore
from shared.settings import Settings

LEDGER = "erasures"
BATCH = 400
BUDGET_DAYS = BUDGET_TTL_S // 86400 + 1


@dataclass
class ErasureReport:
    """What an erasure found (a dry run) or deleted."""

    subject: str  # its pseudonym: the report may be logged
    dry_run: bool
    conversations: int = 0
    messages: int = 0
    idempotency_records: int = 0
    confirmations: int = 0
    corpus_documents: int = 0  # the subject's private documents (with their chunks)
    jobs: int = 0
    exports: int = 0  # data export archives
    api_keys: int = 0
    memorystore_keys: int = 0
    erased_at: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Eraser:
    """Finds and deletes everything stored about one subject."""

    def __init__(self, db: Any, store: Memorystore | None, settings: Settings) -> None:
        self._db = db
        self._store = store
        self._settings = settings

    async def erase(self, subject: str, dry_run: bool = False) -> ErasureReport:
        """Delete the subject's data (or, with ``dry_run``, count it)."""
        report = ErasureReport(pseudonyms.of_subject(self._settings, subject), dry_run)
        if not dry_run:
            report.erased_at = (await self._record(report.subject)).isoformat()
        owned = await subject_data.owned(self._db, subject)
        conversations, messages = owned["conversations"], owned["messages"]
        report.conversations, report.messages = len(conversations), len(messages)
        report.idempotency_records = len(owned["idempotency"])
        report.api_keys = len(owned["api_keys"])
        report.confirmations = len(owned["confirmations"])
        report.corpus_documents = len(owned["corpus_documents"])
        report.jobs = len(owned["jobs"])
        archives = await self._archives(report.subject)
        report.exports = len(archives)
        keys = [snapshot.to_dict() for snapshot in await _documents(owned["api_keys"])]
        key_ids = [str(key["key_id"]) for key in keys if key and "key_id" in key]
        redis_keys = await self._redis_keys(subject, key_ids, [r.id for r in owned["api_keys"]])
        report.memorystore_keys = len(redis_keys)
        if dry_run:
            return report
        # Messages before their conversations: an interrupted run leaves nothing unreachable.
        await self._delete(messages)
        await self._delete(conversations)
        await self._delete(
            owned["idempotency"] + owned["api_keys"] + owned["confirmations"] + owned["jobs"]
        )
        if archives:
            from shared.backup.sinks import open_sink

            sink = open_sink(self._settings.export_sink or "")
            for name in archives:
                await sink.delete(name)
        # A private document's vectors first (Vector Search holds no owner to find them by
        # later), then its chunks and record (a re-run finds what is left), a new corpus version
        # (cached retrieval results name the old one), and a lexical index without their text.
        erased_chunks = [r.id for r in owned["corpus_chunks"]]
        await self._forget_vectors(erased_chunks)
        await self._delete(owned["corpus_chunks"])
        await self._delete(owned["corpus_documents"])
        if erased_chunks or owned["corpus_documents"]:
            from shared.retrieval.corpus import bump_version

            await bump_version(self._db)
        await self._republish(changed=bool(erased_chunks or owned["corpus_documents"]))
        if self._store is not None and redis_keys:
            for start in range(0, len(redis_keys), BATCH):
                await self._store.run(partial(_unlink, redis_keys[start : start + BATCH]), 5.0)
        # Once more, now: a backup read while the deletes ran still holds the subject.
        report.erased_at = (await self._record(report.subject)).isoformat()
        return report

    async def _archives(self, pseudonym: str) -> list[str]:
        """The subject's data export archives (`shared.jobs.export`), if exports are kept."""
        if not self._settings.export_sink:
            return []
        from shared.backup.sinks import open_sink

        return await open_sink(self._settings.export_sink).list(f"exports/{pseudonym}/")

    async def _forget_vectors(self, chunk_ids: list[str]) -> None:
        """Remove erased chunks' datapoints from Vector Search, when it is the backend."""
        if not chunk_ids or self._settings.vector_backend != "vertex":
            return
        from shared.retrieval.vertex_vector import VertexVectorSearch

        index = VertexVectorSearch(self._db, self._settings)
        try:
            await index.remove(chunk_ids)
        finally:
            await index.close()

    async def _republish(self, changed: bool) -> None:
        """A lexical index without the erased text, and no older one that holds it (also made
        up by a re-run, should the publish have failed after the deletes)."""
        if not self._settings.corpus_index_sink:
            return
        from shared.backup.sinks import open_sink
        from shared.retrieval.published import publish_if_behind

        sink = open_sink(self._settings.corpus_index_sink)
        await publish_if_behind(self._db, sink, changed, keep=1)

    async def _record(self, pseudonym: str) -> datetime:
        now = datetime.now(UTC)
        await self._db.collection(LEDGER).document(pseudonym).set({"erased_at": now})
        return now

    async def _delete(self, refs: list[Any]) -> None:
        for start in range(0, len(refs), BATCH):
            batch = self._db.batch()
            for ref in refs[start : start + BATCH]:
                batch.delete(ref)
            await batch.commit()

    async def _redis_keys(self, subject: str, key_ids: list[str], digests: list[str]) -> list[str]:
        """Every Memorystore key holding something of the subject (existing ones only)."""
        if self._store is None:
            return []
        index = owned_keys(subject)
        named = [index, f"ngx:rl:{subject}"]
        named += [f"ngx:rl:key:{key_id}" for key_id in key_ids]
        named += [f"ngx:apikey:{digest}" for digest in digests]
        today = datetime.now(UTC)
        named += [  # budget counters live BUDGET_TTL_S (3 days) after their day's first use
            TokenBudget.key(subject, (today + timedelta(days=d)).strftime("%Y%m%d"))
            for d in range(-BUDGET_DAYS, 2)
        ]

        async def collect(r: Any) -> list[str]:
            found = [m.decode() for m in await r.smembers(index)]
            candidates = found + named
            pipe = r.pipeline(transaction=False)
            for key in candidates:
                pipe.exists(key)
            present = await pipe.execute()
            return [key for key, there in zip(candidates, present, strict=True) if there]

        keys: list[str] = await self._store.run(collect, timeout=10.0)
        return sorted(set(keys))


async def _unlink(keys: list[str], r: Any) -> int:
    return int(await r.unlink(*keys))


async def _documents(refs: list[Any]) -> list[Any]:
    return list(await asyncio.gather(*(ref.get() for ref in refs)))


async def erased_since(db: Any, when: datetime) -> set[str]:
    """Pseudonyms of the subjects erased after ``when`` (a backup's read time): what a restore
    of that backup must leave out."""
    query = db.collection(LEDGER).where(filter=_after("erased_at", when))
    return {snapshot.id async for snapshot in query.select([]).stream()}


def _after(field: str, when: datetime) -> Any:
    from google.cloud.firestore_v1.base_query import FieldFilter

    return FieldFilter(field, ">", when)
