"""The semantic answer cache: a question close enough in meaning to one answered before gets
that answer, saying so (``usage.cached`` and ``usage.semantic_similarity``).

Only context-free questions take part (no conversation), and only with the same options: a
*bucket* names everything besides the question that shapes an answer (instruction, language,
tier, temperature, length, tools offered, schema, retrieval mode and the corpus version). Each
bucket exists once shared and once per subject: an answer whose context was private to its caller
(a private document retrieved, a private tool's result) is kept in that caller's bucket only, so
it is never served to anyone else — nor is an answer to a question naming personal data (an
email, a phone or card number: the answer may repeat it); a lookup reads the shared bucket and the
caller's own. Answers
that used a tool without a cache TTL (not idempotent), or that paused for a confirmation, are
never kept; one that used idempotent tools lives no longer than the shortest of their TTLs.

Numbers and codes (``E-413``, ``A-1234``) must match exactly as well: an embedding barely tells
two error codes apart, and they need different answers.

In Memorystore a bucket is a hash of entry id → question embedding (int8, one byte a dimension,
then an 8-byte digest of the question's numbers and codes),
a sorted set of entry ids by expiry (the oldest go first beyond ``NGX_SEMANTIC_CACHE_MAX_ENTRIES``)
and one key per answer. A lookup is one round trip for the embeddings and, on a hit, one for the
answer; the question's embedding itself is cached by the embedder. Question texts are not kept.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

from shared.llm.cache import PREFIX, own
from shared.memorystore import Memorystore, StoreUnavailable
from shared.redact import Redactor
from shared.retrieval.embeddings import Embedder
from shared.settings import Settings


@dataclass(frozen=True)
class SemanticHit:
    """A kept answer and how similar its question was to this one (cosine, 1 is identical)."""

    text: str
    model: str
    finish_reason: str
    similarity: float
    data: Any = None
    sources: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class Lookup:
    """A question's embedding and bucket, and the hit found for it (if any)."""

    bucket: str
    vector: list[float]
    hit: SemanticHit | None
    guard: bytes = b""  # the digest of the numbers and codes the question names


def bucket_of(material: list[Any]) -> str:
    """A bucket's name from everything that shapes an answer besides the question."""
    text = json.dumps(material, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _base(bucket: str, subject: str | None) -> str:
    scope = hashlib.sha256(subject.encode()).hexdigest()[:24] if subject else "shared"
    return f"{PREFIX}:sem:{scope}:{bucket}"


_EDGES = "".join(chr(c) for c in range(128) if not chr(c).isalnum())  # ASCII punctuation
GUARD_BYTES = 8


def guard_of(question: str) -> bytes:
    """What must match exactly besides the meaning: the numbers and codes a question names
    (``E-413``, ``A-1234``, ``12``, ``2025-01-01``) — an embedding barely tells them apart.
    Words holding a digit, stripped of surrounding punctuation (one pass, linear)."""
    found = sorted(
        {
            word.strip(_EDGES)
            for word in question.casefold().split()
            if any(c.isdigit() for c in word)
        }
    )
    material = "\x1f".join(found).encode("utf-8", "surrogatepass")
    return hashlib.blake2b(material, digest_size=GUARD_BYTES).digest()


def quantize(vector: list[float]) -> bytes:
    """A unit vector as int8 (−127…127): a quarter of float32's size, cosine within ~1%."""
    import numpy as np

    values = np.clip(np.rint(np.asarray(vector, dtype=np.float32) * 127), -127, 127)
    return bytes(values.astype(np.int8).tobytes())


class SemanticCache:
    """Finds and keeps answers by their question's meaning; one per process."""

    def __init__(
        self, settings: Settings, embedder: Embedder, store: Memorystore, redactor: Redactor
    ) -> None:
        self._embedder = embedder
        self._store = store
        self._redactor = redactor
        self.min_similarity = settings.semantic_cache_min_similarity
        self._ttl_s = settings.semantic_cache_ttl_s
        self._max_entries = settings.semantic_cache_max_entries

    def personal(self, question: str) -> bool:
        """Whether a question names personal data (an email, a phone or card number…): its
        answer may repeat it, so it is kept for its asker only."""
        return self._redactor.text(question) != question

    async def lookup(self, question: str, bucket: str, subject: str) -> Lookup:
        """The closest kept answer to ``question`` in the shared bucket or the subject's."""
        import numpy as np

        [vector] = await self._embedder.embed([question[:8000]], "SEMANTIC_SIMILARITY")
        bases = [_base(bucket, None), _base(bucket, subject)]

        async def read(r: Any) -> list[Any]:
            pipe = r.pipeline(transaction=False)
            for base in bases:
                pipe.hgetall(f"{base}:v")
            found: list[Any] = await pipe.execute()
            return found

        try:
            tables = await self._store.run(read)
        except StoreUnavailable:
            return Lookup(bucket, vector, None, guard_of(question))
        guard = guard_of(question)
        ids: list[tuple[str, bytes]] = []
        rows: list[bytes] = []
        for base, table in zip(bases, tables, strict=True):
            for entry_id, packed in table.items():
                if len(packed) == len(vector) + GUARD_BYTES and packed.endswith(guard):
                    ids.append((base, entry_id))
                    rows.append(packed[: len(vector)])
        if not rows:
            return Lookup(bucket, vector, None, guard)
        matrix = np.frombuffer(b"".join(rows), dtype=np.int8).reshape(len(rows), len(vector))
        scores = (matrix.astype(np.float32) / 127) @ np.asarray(vector, dtype=np.float32)
        best = int(np.argmax(scores))
        similarity = float(scores[best])
        if similarity < self.min_similarity:
            return Lookup(bucket, vector, None, guard)
        base, entry_id = ids[best]
        try:
            raw = await self._store.run(lambda r: r.get(f"{base}:a:{entry_id.decode()}"))
        except StoreUnavailable:
            return Lookup(bucket, vector, None, guard)
        if raw is None:  # expired or evicted: its embedding goes at the next write
            return Lookup(bucket, vector, None, guard)
        entry = json.loads(raw)
        hit = SemanticHit(
            text=entry["text"],
            model=entry["model"],
            finish_reason=entry["finish_reason"],
            similarity=round(min(similarity, 1.0), 4),
            data=entry.get("data"),
            sources=tuple(entry.get("sources") or ()),
        )
        return Lookup(bucket, vector, hit, guard)

    async def remember(
        self, found: Lookup, answer: SemanticHit, owner: str | None, ttl_s: int | None = None
    ) -> None:
        """Keep an answer for questions like this one: shared, or ``owner``'s only."""
        ttl = min(self._ttl_s, ttl_s) if ttl_s else self._ttl_s
        base = _base(found.bucket, owner)
        entry_id = secrets.token_hex(8)
        now = time.time()
        body = json.dumps(
            {
                "text": answer.text,
                "model": answer.model,
                "finish_reason": answer.finish_reason,
                "data": answer.data,
                "sources": list(answer.sources),
            },
            ensure_ascii=False,
        )
        keep = self._max_entries
        life = self._ttl_s

        async def write(r: Any) -> None:
            pipe = r.pipeline(transaction=False)
            pipe.set(f"{base}:a:{entry_id}", body, ex=ttl)
            pipe.hset(f"{base}:v", entry_id, quantize(found.vector) + found.guard)
            pipe.zadd(f"{base}:t", {entry_id: now + ttl})
            pipe.expire(f"{base}:v", life)
            pipe.expire(f"{base}:t", life)
            own(pipe, owner, [f"{base}:v", f"{base}:t", f"{base}:a:{entry_id}"], life)
            await pipe.execute()
            # The expired, then the oldest beyond the bound, leave the bucket.
            expired = await r.zrangebyscore(f"{base}:t", "-inf", now)
            if expired:
                await r.zrem(f"{base}:t", *expired)
            extra = await r.zcard(f"{base}:t") - keep
            popped = await r.zpopmin(f"{base}:t", extra) if extra > 0 else []
            gone = [*expired, *(member for member, _ in popped)]
            if gone:
                cleanup = r.pipeline(transaction=False)
                cleanup.hdel(f"{base}:v", *gone)
                cleanup.delete(*(f"{base}:a:{g.decode()}" for g in gone))
                await cleanup.execute()

        with contextlib.suppress(StoreUnavailable):
            await self._store.run(write)
