"""Vector search over the corpus chunks in Firestore (``find_nearest``, cosine), pre-filtered on
what the caller may see: public chunks, its tenant's, and its own — never another user's.

Expired chunks (``expires_at`` in the past) are dropped after the search, which therefore asks
for a few more neighbours than it returns. Production needs the composite vector index on
(``visibility``, ``embedding``) declared in ``infra/modules/firestore``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from shared.retrieval.names import CHUNKS


@dataclass(frozen=True)
class Hit:
    """A chunk found by a search, with its cosine similarity to the query (1 is identical)."""

    chunk_id: str
    uri: str
    title: str
    section: str
    text: str
    similarity: float
    tags: tuple[str, ...] = ()
    visibility: str = "public"
    updated_at: float = 0.0  # seconds since the epoch (0: unknown)
    expires_at: float | None = None  # seconds since the epoch; None: never
    vector: tuple[float, ...] = field(default=(), repr=False, compare=False)


def _seconds(value: Any) -> float:
    return value.timestamp() if isinstance(value, datetime) else 0.0


def visible_to(subject: str | None, tenant: str | None = None) -> list[str]:
    """The visibility values a caller may read."""
    found = ["public"]
    if tenant:
        found.append(f"tenant:{tenant}")
    if subject:
        found.append(subject)
    return found


class VectorSearch:
    """Nearest chunks by embedding; one per process."""

    def __init__(self, db: Any) -> None:
        self._db = db

    async def nearest(
        self,
        vector: list[float],
        visibility: list[str],
        limit: int,
        margin: int = 5,
        tags: list[str] | None = None,
    ) -> list[Hit]:
        """Up to ``limit`` chunks nearest to ``vector`` among those with one of ``visibility``
        (and, when ``tags`` are given, one of those tags)."""
        from google.cloud.firestore_v1.base_query import FieldFilter
        from google.cloud.firestore_v1.base_vector_query import DistanceMeasure
        from google.cloud.firestore_v1.vector import Vector

        chunks = self._db.collection(CHUNKS).where(
            filter=FieldFilter("visibility", "in", visibility)
        )
        if tags:
            chunks = chunks.where(filter=FieldFilter("tags", "array_contains_any", tags))
        query = chunks.find_nearest(
            vector_field="embedding",
            query_vector=Vector(vector),
            distance_measure=DistanceMeasure.COSINE,
            limit=limit + margin,
            distance_result_field="distance",
        )
        now = datetime.now(UTC)
        hits: list[Hit] = []
        async for snapshot in query.stream():
            data = snapshot.to_dict() or {}
            expires = data.get("expires_at")
            if expires is not None and expires <= now:
                continue
            hits.append(hit_of(snapshot.id, data, 1.0 - float(data.get("distance", 1.0))))
            if len(hits) == limit:
                break
        return hits


def hit_of(chunk_id: str, data: dict[str, Any], similarity: float) -> Hit:
    """A chunk document as a hit, with its similarity to the query."""
    return Hit(
        chunk_id=chunk_id,
        uri=data["uri"],
        title=data.get("title", ""),
        section=data.get("section", ""),
        text=data.get("text", ""),
        similarity=similarity,
        tags=tuple(data.get("tags") or ()),
        visibility=data.get("visibility", "public"),
        updated_at=_seconds(data.get("updated_at")),
        expires_at=_seconds(data.get("expires_at")) or None,
        vector=tuple(data.get("embedding") or ()),
    )


class NearestChunks(Protocol):
    """What retrieval needs of a vector backend (Firestore, or Vertex AI Vector Search)."""

    async def nearest(
        self,
        vector: list[float],
        visibility: list[str],
        limit: int,
        margin: int = 5,
        tags: list[str] | None = None,
    ) -> list[Hit]: ...
