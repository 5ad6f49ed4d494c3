"""Retrieval for one chat turn: the chunks a caller may see that are close enough to its question.

The question is embedded as a query; vector search (Firestore ``find_nearest``) and the lexical
index (BM25, built per corpus version) each propose candidates the caller may see; they are fused
by reciprocal rank, those below the similarity floor (``NGX_RETRIEVAL_MIN_SIMILARITY``) dropped —
so an unrelated question injects no context at all — and the rest diversified by MMR
(`shared.retrieval.fusion`). Results are cached in Memorystore by question, visibility, mode and
corpus version: a new version is a new key. `context` renders the kept chunks as numbered
sources the model is told to cite.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import time
from dataclasses import asdict, replace
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.agent.tools import Tool, ToolContext
from shared.llm.cache import PREFIX
from shared.memorystore import Memorystore, StoreUnavailable
from shared.retrieval.embeddings import Embedder
from shared.retrieval.fusion import Ranking, choose
from shared.retrieval.published import CorpusView
from shared.retrieval.rerank import Reranker
from shared.retrieval.vector import Hit, NearestChunks, visible_to
from shared.settings import Settings

log = logging.getLogger("ngx.retrieval")
Mode = Literal["hybrid", "vector", "lexical"]
RETRIEVE = "retrieve"  # the built-in tool's name (no tools file may declare it)
CITE = (
    "Answer from the sources below when they hold the answer, and cite each one you use as [n]. "
    "If they do not answer the question, say so rather than guess."
)


class Retriever:
    """Finds the context of a question; one per process."""

    def __init__(
        self,
        settings: Settings,
        embedder: Embedder,
        search: NearestChunks,
        corpus: CorpusView,
        store: Memorystore | None = None,
        reranker: Reranker | None = None,
    ) -> None:
        self._settings = settings
        self.embedder = embedder
        self._search = search
        self._corpus = corpus
        self._store = store
        self._reranker = reranker
        s = settings
        self.ranking = Ranking(
            top_k=s.retrieval_top_k,
            min_similarity=s.retrieval_min_similarity,
            min_coverage=s.retrieval_min_term_coverage,
            rrf_k=s.retrieval_rrf_k,
            mmr_lambda=s.retrieval_mmr_lambda,
            half_life_days=s.retrieval_recency_half_life_days,
            recency_weight=s.retrieval_recency_weight,
        )

    async def corpus_version(self) -> int:
        """The corpus version this instance knows (re-read every ``NGX_CORPUS_REFRESH_S``)."""
        version, _ = await self._corpus.state()
        return version

    async def retrieve(
        self,
        question: str,
        subject: str | None,
        tenant: str | None = None,
        mode: Mode | None = None,
        ranking: Ranking | None = None,
        rerank: bool | None = None,
        tags: list[str] | None = None,
    ) -> list[Hit]:
        """The chunks to give the model, best first (none when nothing is close enough); with
        ``tags``, only from documents carrying one of them."""
        mode = mode or self._settings.retrieval_mode
        ranking = ranking or self.ranking
        rerank = self._reranker is not None and (
            self._settings.retrieval_rerank if rerank is None else rerank
        )
        visibility = visible_to(subject, tenant)
        version, index = await self._corpus.state()
        how = f"{mode}+rerank" if rerank else mode
        if tags:
            tags = sorted(set(tags))
            how = f"{how}|{','.join(tags)}"
        key = _cache_key(question, visibility, how, version, index, ranking, self._settings)
        cached = await self._cached(key)
        if cached is not None:
            return cached
        if rerank and self._reranker is not None:
            wide = replace(
                ranking, top_k=max(self._settings.retrieval_rerank_candidates, ranking.top_k)
            )
            found = await self._find(question, visibility, mode, index, wide, tags)
            hits = await self._reranker.rerank(question, found, ranking.top_k)
        else:
            hits = await self._find(question, visibility, mode, index, ranking, tags)
        await self._remember(key, hits)
        return hits

    async def _find(
        self,
        question: str,
        visibility: list[str],
        mode: Mode,
        index: Any,
        ranking: Ranking,
        tags: list[str] | None,
    ) -> list[Hit]:
        now = time.time()
        many = self._settings.retrieval_candidates
        [query] = await self.embedder.embed([question[:8000]], "RETRIEVAL_QUERY")
        candidates: dict[str, tuple[Hit, Any]] = {}
        rankings: list[list[str]] = []
        if mode != "lexical" or index is None:
            found = await self._search.nearest(query, visibility, many, tags=tags)
            rankings.append([h.chunk_id for h in found])
            candidates.update((h.chunk_id, (h, h.vector)) for h in found)
        coverage: dict[str, float] = {}
        if mode != "vector" and index is not None:
            lexical = index.search(question, visibility, many, now, tags)
            rankings.append([index.chunks[n].chunk_id for n, _ in lexical.found])
            for n, _ in lexical.found:
                chunk = index.chunks[n]
                if chunk.chunk_id not in candidates:
                    candidates[chunk.chunk_id] = (_hit_of(chunk), index.vectors[n])
            for chunk_id in candidates:
                position = index.position(chunk_id)
                if position is not None:
                    coverage[chunk_id] = float(lexical.coverage[position])
        chosen = choose(query, candidates, rankings, ranking, now, coverage)
        from_firestore = {h.chunk_id for h, _ in candidates.values() if h.vector}
        return await self._still_visible(chosen, from_firestore, visibility, tags)

    async def _still_visible(
        self,
        hits: list[Hit],
        from_firestore: set[str],
        visibility: list[str],
        tags: list[str] | None,
    ) -> list[Hit]:
        """The hits minus lexical-only ones whose chunk left Firestore, or is no longer visible
        to the caller, since the index was built (a removed, erased or newly private document's
        text is never served from an older index)."""
        unchecked = [h.chunk_id for h in hits if h.chunk_id not in from_firestore]
        if not unchecked:
            return hits
        still = await self._corpus.visible(unchecked, visibility, tags)
        return [h for h in hits if h.chunk_id in from_firestore or h.chunk_id in still]

    async def _cached(self, key: str) -> list[Hit] | None:
        if self._store is None or self._settings.retrieval_cache_ttl_s == 0:
            return None
        try:
            raw = await self._store.run(lambda r: r.get(key))
        except StoreUnavailable:
            return None
        if raw is None:
            return None
        return [Hit(**{**h, "tags": tuple(h["tags"])}) for h in json.loads(raw)]

    async def _remember(self, key: str, hits: list[Hit]) -> None:
        ttl = self._settings.retrieval_cache_ttl_s
        if self._store is None or ttl == 0:
            return
        expiries = [h.expires_at for h in hits if h.expires_at]
        if expiries:  # never served past a cited chunk's expiry
            ttl = min(ttl, int(min(expiries) - time.time()))
            if ttl < 1:
                return
        rows = [{k: v for k, v in asdict(h).items() if k != "vector"} for h in hits]
        payload = json.dumps(rows, ensure_ascii=False)
        with contextlib.suppress(StoreUnavailable):
            await self._store.run(lambda r: r.set(key, payload, ex=ttl))


def _hit_of(chunk: Any) -> Hit:
    return Hit(
        chunk_id=chunk.chunk_id,
        uri=chunk.uri,
        title=chunk.title,
        section=chunk.section,
        text=chunk.text,
        similarity=0.0,
        tags=chunk.tags,
        visibility=chunk.visibility,
        updated_at=chunk.updated_at,
        expires_at=chunk.expires_at,
    )


def _cache_key(
    question: str,
    visibility: list[str],
    mode: str,
    version: int,
    index: Any,
    ranking: Ranking,
    settings: Settings,
) -> str:
    """Retrieval results' key: the question, who may see what, how (mode, ranking, the
    deployment's candidates, backend, embedding and ranking models), and which corpus."""
    lexical = index.version if index is not None else -1
    how = [
        settings.retrieval_candidates,
        settings.retrieval_rerank_candidates,
        settings.ranking_model,
        settings.vector_backend,
        settings.embedding_model,
        settings.embedding_dimensions,
    ]
    material = json.dumps(
        [question, sorted(visibility), mode, lexical, asdict(ranking), how], ensure_ascii=False
    )
    digest = hashlib.sha256(material.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{PREFIX}:retr:{version}:{digest}"


def context(hits: list[Hit], budget_tokens: int) -> str:
    """The sources block of the system instruction, within ``budget_tokens`` (estimated)."""
    lines = [CITE, ""]
    used = 0
    for number, hit in enumerate(hits, start=1):
        heading = " — ".join(part for part in (hit.title, hit.section) if part)
        block = f"[{number}] {heading} ({hit.uri})\n{hit.text}"
        cost = len(block) // 4 + 1
        if lines[2:] and used + cost > budget_tokens:
            break
        lines.append(block)
        used += cost
    return "\n\n".join(lines)


class RetrieveArguments(BaseModel):
    """The built-in ``retrieve`` tool's arguments."""

    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=500, description="What to look up, in words.")


def retrieve_tool(retriever: Retriever, tags: list[str] | None = None) -> Tool:
    """The built-in ``retrieve`` tool (retrieval ``tool``): the model looks the corpus up itself.

    Its result lists numbered passages and, under ``sources``, what the answer then cites."""

    async def run(arguments: BaseModel, context: ToolContext) -> dict[str, Any]:
        assert isinstance(arguments, RetrieveArguments)
        hits = await retriever.retrieve(arguments.query, context.subject, tags=tags)
        return {
            "passages": [
                {"n": n, "title": h.title, "section": h.section, "text": h.text}
                for n, h in enumerate(hits, start=1)
            ],
            "sources": [
                {
                    "uri": h.uri,
                    "title": h.title,
                    "section": h.section,
                    "snippet": h.text[:300],
                    "score": round(h.similarity, 4),
                }
                for h in hits
            ],
        }

    return Tool(
        name=RETRIEVE,
        description="Search the help articles and documents for passages about a query; "
        "returns numbered passages to answer from and cite.",
        arguments=RetrieveArguments,
        run=run,
        kind="builtin",
        timeout_s=10.0,
        cache_ttl_s=0,  # the retriever caches its results itself, by corpus version
        private=True,  # what a caller may see depends on who asks
    )
