"""Text embeddings through Vertex AI, cached in Memorystore by model, size, task and text hash.

`Embedder.embed` reads every cached vector in one round trip, asks the model only for the texts it
lacks — in batches within the API's limits (250 texts, about 20,000 tokens per request; the
documents of a concurrent ingestion share requests, gathered for 3 ms) — through
the same retries, backoff and circuit breaker as the model calls, and stores what it got. The same
text is never embedded twice while its vector is cached; a Memorystore outage only costs the cache.
"""

from __future__ import annotations

import asyncio
import hashlib
from array import array
from collections.abc import Sequence
from typing import Any, Literal

from shared import errors
from shared.llm.accounting import estimate_tokens
from shared.llm.cache import PREFIX
from shared.llm.resilience import Resilience
from shared.llm.transport import VertexTransport
from shared.llm.types import CallStats
from shared.memorystore import Memorystore, StoreUnavailable
from shared.settings import Settings

Task = Literal["RETRIEVAL_DOCUMENT", "RETRIEVAL_QUERY", "SEMANTIC_SIMILARITY"]
COALESCE_S = 0.003  # how long a document's texts wait for others' to share a request


def cache_key(model: str, dimensions: int, task: str, text: str) -> str:
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{PREFIX}:emb:{model}:{dimensions}:{task}:{digest}"


def pack(vector: Sequence[float]) -> bytes:
    """A vector as the cache stores it: float32, 4 bytes a dimension."""
    return array("f", vector).tobytes()


def unpack(data: bytes) -> list[float]:
    values = array("f")
    values.frombytes(data)
    return values.tolist()


def batches(texts: Sequence[str], max_texts: int, max_tokens: int) -> list[list[int]]:
    """Indexes of ``texts`` grouped into requests within the text and estimated-token limits."""
    found: list[list[int]] = []
    current: list[int] = []
    tokens = 0
    for index, text in enumerate(texts):
        cost = estimate_tokens(text)
        if current and (len(current) >= max_texts or tokens + cost > max_tokens):
            found.append(current)
            current, tokens = [], 0
        current.append(index)
        tokens += cost
    if current:
        found.append(current)
    return found


class Embedder:
    """Embeds texts; one per process (it shares the model client's transport and resilience)."""

    def __init__(
        self,
        settings: Settings,
        transport: VertexTransport,
        resilience: Resilience,
        store: Memorystore | None,
    ) -> None:
        self._settings = settings
        self._transport = transport
        self._resilience = resilience
        self._store = store
        self.model = settings.embedding_model
        self.dimensions = settings.embedding_dimensions
        self._waiting: list[tuple[list[str], asyncio.Future[list[list[float]]]]] = []
        self._waiting_texts = 0
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._flushing: set[asyncio.Task[None]] = set()

    async def embed(self, texts: Sequence[str], task: Task) -> list[list[float]]:
        """A unit vector per text, in order."""
        if not texts:
            return []
        keys = [cache_key(self.model, self.dimensions, task, t) for t in texts]
        found: list[list[float] | None] = await self._cached(keys)
        missing = [i for i, vector in enumerate(found) if vector is None]
        s = self._settings
        fresh: dict[int, list[float]] = {}
        if task == "RETRIEVAL_DOCUMENT" and missing:  # ingestion: share requests
            vectors = await self._coalesced([texts[i] for i in missing])
            fresh.update(zip(missing, vectors, strict=True))
        for group in (
            []
            if task == "RETRIEVAL_DOCUMENT"
            else batches(
                [texts[i] for i in missing], s.embedding_batch_texts, s.embedding_batch_tokens
            )
        ):
            indexes = [missing[j] for j in group]
            vectors = await self._ask([texts[i] for i in indexes], task)
            fresh.update(zip(indexes, vectors, strict=True))
        if fresh:
            await self._remember({keys[i]: vector for i, vector in fresh.items()})
        return [vector if vector is not None else fresh[i] for i, vector in enumerate(found)]

    async def _coalesced(self, texts: list[str]) -> list[list[float]]:
        """Document texts embedded together with those other calls ask for within
        ``COALESCE_S``: documents ingested concurrently share requests (up to the API's limits)."""
        loop = asyncio.get_running_loop()
        if self._timer is not None and self._loop is not loop:  # another loop's (tests): drop
            self._timer, self._waiting, self._waiting_texts = None, [], 0
        self._loop = loop
        future: asyncio.Future[list[list[float]]] = loop.create_future()
        self._waiting.append((texts, future))
        self._waiting_texts += len(texts)
        if self._waiting_texts >= self._settings.embedding_batch_texts:
            self._flush_now()
        elif self._timer is None:
            self._timer = loop.call_later(COALESCE_S, self._flush_now)
        return await future

    def _flush_now(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        waiting, self._waiting, self._waiting_texts = self._waiting, [], 0
        if waiting:
            task = asyncio.get_running_loop().create_task(self._flush(waiting))
            self._flushing.add(task)
            task.add_done_callback(self._flushing.discard)

    async def _flush(
        self, waiting: list[tuple[list[str], asyncio.Future[list[list[float]]]]]
    ) -> None:
        s = self._settings
        texts = [t for group, _ in waiting for t in group]
        failure: BaseException = errors.Unavailable("the embedding request was abandoned")
        try:
            groups = batches(texts, s.embedding_batch_texts, s.embedding_batch_tokens)
            answers = await asyncio.gather(
                *(self._ask([texts[i] for i in g], "RETRIEVAL_DOCUMENT") for g in groups)
            )
            vectors = [v for answer in answers for v in answer]
            start = 0
            for group, future in waiting:
                if not future.done():
                    future.set_result(vectors[start : start + len(group)])
                start += len(group)
        except Exception as exc:
            failure = exc
        finally:  # every waiter hears something, even when this flush is cancelled
            for _, future in waiting:
                if not future.done():
                    future.set_exception(failure)

    async def _ask(self, texts: list[str], task: Task) -> list[list[float]]:
        timeout_s = self._settings.vertex_attempt_timeout_s

        async def attempt(model: str, remaining: float) -> list[list[float]]:
            return await self._transport.embed(
                texts, model, task, self.dimensions, min(timeout_s, remaining)
            )

        vectors, _, _ = await self._resilience.call([self.model], CallStats(), attempt)
        return vectors

    async def _cached(self, keys: list[str]) -> list[list[float] | None]:
        if self._store is None:
            return [None] * len(keys)
        try:
            raw: list[Any] = await self._store.run(lambda r: r.mget(keys))
        except StoreUnavailable:
            return [None] * len(keys)
        return [unpack(value) if value else None for value in raw]

    async def _remember(self, vectors: dict[str, list[float]]) -> None:
        if self._store is None:
            return
        ttl = self._settings.embedding_cache_ttl_s

        async def write(r: Any) -> None:
            pipe = r.pipeline(transaction=False)
            for key, vector in vectors.items():
                pipe.set(key, pack(vector), ex=ttl)
            await pipe.execute()

        try:
            await self._store.run(write, timeout=max(self._store.timeout, 1.0))
        except StoreUnavailable:
            return
