"""Lexical indexes published per corpus version, and each instance's view of the corpus.

After an ingestion (the CLI's run, the ``ingest`` function's event, an erasure of private
documents) `publish` builds the BM25 index of the corpus as it then is, writes it to the index
sink (``NGX_CORPUS_INDEX_SINK``: ``gs://…`` in production, ``file://…`` locally) as
``lexical/v{version}-{id}.tar.zst`` and points ``config/corpus``'s ``lexical`` field at it — only
forward, so a slow build never replaces a newer one. Older objects are pruned.

`CorpusView` is what one instance knows: the corpus version and the index it names, re-read at
most every ``NGX_CORPUS_REFRESH_S``. The first index is loaded when first needed (once, however
many requests wait for it); a newer one is loaded in the background while the old one keeps
serving. An unreachable sink or an unreadable object leaves retrieval vector-only (logged, tried
again after a refresh period), never failing a request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from shared.backup.sinks import Missing, Sink, open_sink
from shared.retrieval.names import CHUNKS, VERSION_DOC
from shared.settings import Settings

if TYPE_CHECKING:
    from shared.retrieval.lexical import LexicalIndex

log = logging.getLogger("ngx.retrieval")
PREFIX = "lexical/"
KEEP = 3  # published indexes kept: the current one and two an instance may still be loading


@dataclass(frozen=True)
class Published:
    """An index that was published: the corpus version it holds and its object's name."""

    version: int
    name: str
    chunks: int


def _epoch(value: Any) -> float | None:
    return value.timestamp() if isinstance(value, datetime) else None


async def publish(db: Any, sink: Sink, keep: int = KEEP) -> Published:
    """Build the corpus's lexical index now, store it and point the corpus version at it;
    ``keep``: how many published indexes remain (1 after an erasure: none holds its text)."""
    from shared.retrieval.lexical import IndexedChunk, build

    version_ref = db.collection(VERSION_DOC[0]).document(VERSION_DOC[1])
    before = await version_ref.get()  # read first: the index holds at least this version
    version = int((before.to_dict() or {}).get("version", 0)) if before.exists else 0
    chunks: list[IndexedChunk] = []
    vectors: list[list[float]] = []
    async for snapshot in db.collection(CHUNKS).stream():
        data = snapshot.to_dict() or {}
        if data.get("embedding") is None:
            continue
        chunks.append(
            IndexedChunk(
                chunk_id=snapshot.id,
                uri=data.get("uri", ""),
                title=data.get("title", ""),
                section=data.get("section", ""),
                text=data.get("text", ""),
                visibility=data.get("visibility", "public"),
                tags=tuple(data.get("tags") or ()),
                updated_at=_epoch(data.get("updated_at")) or 0.0,
                expires_at=_epoch(data.get("expires_at")),
            )
        )
        vectors.append(list(data["embedding"]))
    blob = await asyncio.to_thread(build, chunks, vectors, version)
    name = f"{PREFIX}v{version:010d}-{secrets.token_hex(4)}.tar.zst"
    await sink.put(name, blob)
    published = Published(version, name, len(chunks))
    if await _point_at(db, version_ref, published):
        log.info("lexical index published", extra={"version": version, "chunks": len(chunks)})
    await _prune(db, sink, keep)
    return published


async def publish_if_behind(
    db: Any, sink: Sink, changed: bool = True, keep: int = KEEP
) -> Published | None:
    """Publish after a change — or whenever the published index is older than the corpus (a
    publish that failed after its change was committed is made up by the next call)."""
    if not changed:
        snapshot = await db.collection(VERSION_DOC[0]).document(VERSION_DOC[1]).get()
        data = (snapshot.to_dict() or {}) if snapshot.exists else {}
        published = int((data.get("lexical") or {}).get("version", -1))
        if published >= int(data.get("version", 0)):
            return None
    return await publish(db, sink, keep)


async def published_index(db: Any) -> dict[str, Any] | None:
    """What ``config/corpus`` names as the current lexical index (None before the first)."""
    snapshot = await db.collection(VERSION_DOC[0]).document(VERSION_DOC[1]).get()
    lexical: dict[str, Any] | None = (snapshot.to_dict() or {}).get("lexical") or None
    return lexical


async def _point_at(db: Any, reference: Any, published: Published) -> bool:
    """Name ``published`` in ``config/corpus`` unless a newer index is named there already."""
    from google.cloud.firestore_v1 import async_transactional

    @async_transactional  # type: ignore[untyped-decorator]
    async def move(transaction: Any) -> bool:
        snapshot = await reference.get(transaction=transaction)
        current = (snapshot.to_dict() or {}).get("lexical") if snapshot.exists else None
        if current and int(current.get("version", -1)) > published.version:
            return False
        lexical = {"version": published.version, "name": published.name}
        lexical["chunks"] = published.chunks
        transaction.set(
            reference, {"lexical": lexical, "updated_at": datetime.now(UTC)}, merge=True
        )
        return True

    moved: bool = await move(db.transaction())
    return moved


async def _prune(db: Any, sink: Sink, keep: int) -> None:
    """Delete published indexes beyond the newest few, never the one ``config/corpus`` names."""
    current = (await published_index(db) or {}).get("name")
    names = sorted(await sink.list(PREFIX))
    for name in names[:-keep]:
        if name != current:
            with contextlib.suppress(Missing):
                await sink.delete(name)


class CorpusView:
    """One instance's view of the corpus: its version and the lexical index it names."""

    def __init__(
        self, db: Any, settings: Settings, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._db = db
        self._refresh_s = settings.corpus_refresh_s
        self._sink: Sink | None = (
            open_sink(settings.corpus_index_sink) if settings.corpus_index_sink else None
        )
        self._clock = clock
        self._read_at = float("-inf")
        self._version = 0
        self._named: str | None = None
        self._index: LexicalIndex | None = None
        self._loaded: str | None = None
        self._lock = asyncio.Lock()
        self._load_lock = asyncio.Lock()
        self._loading: asyncio.Task[None] | None = None
        self._retry_at = float("-inf")  # after a failed load, not before this

    async def state(self) -> tuple[int, LexicalIndex | None]:
        """The corpus version and the newest loaded lexical index (None before any)."""
        if self._clock() - self._read_at >= self._refresh_s:
            async with self._lock:
                if self._clock() - self._read_at >= self._refresh_s:
                    await self._read()
        if self._named is None:  # none published (or the corpus was emptied and reset)
            self._index = self._loaded = None
        elif self._named != self._loaded and self._clock() >= self._retry_at:
            if self._index is None:  # nothing to serve yet: one load, the others wait for it
                async with self._load_lock:
                    if (
                        self._named is not None
                        and self._named != self._loaded
                        and self._clock() >= self._retry_at  # not again after a failure
                    ):
                        await self._load(self._named)
            elif self._loading is None or self._loading.done():
                self._loading = asyncio.create_task(self._load(self._named))
        return self._version, self._index

    async def visible(
        self, chunk_ids: list[str], visibility: list[str], tags: list[str] | None
    ) -> set[str]:
        """Which of these chunks Firestore still holds as visible to ``visibility`` (and
        carrying one of ``tags``, if given) — one read for them all: a document removed, or made
        private, since the lexical index was built is not served from it."""
        if not chunk_ids:
            return set()
        refs = [self._db.collection(CHUNKS).document(i) for i in chunk_ids]
        found = set()
        async for snapshot in self._db.get_all(refs, field_paths=["visibility", "tags"]):
            data = (snapshot.to_dict() or {}) if snapshot.exists else None
            if data is None or data.get("visibility") not in visibility:
                continue
            if tags and not set(tags) & set(data.get("tags") or ()):
                continue
            found.add(snapshot.id)
        return found

    async def _read(self) -> None:
        snapshot = await self._db.collection(VERSION_DOC[0]).document(VERSION_DOC[1]).get()
        data = (snapshot.to_dict() or {}) if snapshot.exists else {}
        self._version = int(data.get("version", 0))
        lexical = data.get("lexical") or {}
        self._named = lexical.get("name") if self._sink is not None else None
        self._read_at = self._clock()

    async def _load(self, name: str) -> None:
        """Load ``name``; on failure serve no lexical index (an older one may hold text since
        removed) and try again after a refresh period."""
        from shared.retrieval.lexical import IndexUnreadable, LexicalIndex

        assert self._sink is not None
        try:
            blob = await self._sink.get(name)
            index = await asyncio.to_thread(LexicalIndex.load, blob)
        except Exception as exc:
            expected = isinstance(exc, (Missing, IndexUnreadable, OSError))
            log.warning(
                "lexical index not loaded; retrieval is vector only",
                extra={"why": str(exc)},
                exc_info=not expected,
            )
            self._index = self._loaded = None
            self._retry_at = self._clock() + self._refresh_s
            return
        # The one config/corpus names (it only moves forward) replaces whatever was served.
        self._index, self._loaded = index, name
