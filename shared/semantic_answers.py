"""The chat's side of the semantic cache: which requests take part, under which bucket, and
which answers may be kept and for whom (`shared.semantic_cache` holds the mechanism)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from shared.agent.loop import Answer
from shared.agent.tools import Tool
from shared.contracts import ChatRequest, Source
from shared.llm.types import LlmRequest, LlmResult
from shared.semantic_cache import SemanticHit, bucket_of
from shared.settings import Settings


def takes_part(request: ChatRequest, settings: Settings) -> bool:
    """Context-free (no conversation) and deterministic enough to share an answer."""
    temperature = settings.temperature if request.temperature is None else request.temperature
    return (
        settings.semantic_cache_enabled
        and settings.cache_enabled
        and request.conversation_id is None
        and temperature <= settings.cache_max_temperature
    )


def bucket(
    request: LlmRequest,
    tools: Sequence[Tool],
    retrieval: tuple[str, list[str] | None],
    corpus_version: int | None,
    settings: Settings,
) -> str:
    """Everything besides the question that shapes the answer: the request's options, the tools
    offered, the retrieval mode and tags, the corpus version, and the deployment's models and
    retrieval settings."""
    return bucket_of(
        [
            request.system_instruction,
            request.tier,
            request.temperature,
            request.max_output_tokens,
            request.response_schema,
            sorted((t.name, t.declaration.description, t.declaration.parameters) for t in tools),
            retrieval[0],
            sorted(retrieval[1] or ()),
            corpus_version,
            settings.model_tiers,
            settings.retrieval_mode,
            settings.retrieval_top_k,
            settings.retrieval_min_similarity,
            settings.retrieval_min_term_coverage,
            settings.retrieval_rerank,
            settings.ranking_model,
            settings.vector_backend,
            settings.embedding_model,
            settings.embedding_dimensions,
        ]
    )


def answer_of(hit: SemanticHit) -> Answer:
    """A kept answer as the loop's answer: no model call, no tokens."""
    result = LlmResult(text=hit.text, model=hit.model, finish_reason=hit.finish_reason, cached=True)
    return Answer(result=result, steps=0, data=hit.data, semantic_similarity=hit.similarity)


def keepable(
    done: Answer,
    tools: Sequence[Tool],
    private_context: bool,
    subject: str,
    expires_at: float | None = None,
) -> tuple[str | None, int | None] | None:
    """Whether ``done`` may be kept: ``(owner, ttl)`` — owner None for the shared bucket, ttl None
    for the cache's own — or None when it must not be kept at all. A cited chunk's expiry
    (``expires_at``, epoch seconds) bounds its life too."""
    result = done.result
    if done.pending is not None or result.finish_reason != "STOP" or result.fallback:
        return None
    if done.semantic_similarity is not None:
        return None  # already kept
    by_name = {t.name: t for t in tools}
    ttls: list[int] = []
    private = private_context
    for call in done.calls:
        tool = by_name.get(call.name)
        if tool is None or not tool.idempotent or call.status != "ok":
            return None
        if tool.cache_ttl_s:
            ttls.append(tool.cache_ttl_s)
        private = private or tool.private
    if expires_at is not None:
        left = int(expires_at - time.time())
        if left < 1:
            return None
        ttls.append(left)
    return (subject if private else None), (min(ttls) if ttls else None)


def kept_answer(done: Answer, sources: Sequence[Source]) -> SemanticHit:
    """What the cache keeps of an answer (its text, data and what it cites)."""
    cited: tuple[dict[str, Any], ...] = tuple(s.model_dump(mode="json") for s in sources)
    return SemanticHit(
        text=done.result.text,
        model=done.result.model,
        finish_reason=done.result.finish_reason,
        similarity=1.0,
        data=done.data,
        sources=cited,
    )
