"""Retrieval for one chat turn: the chunks a caller may see that are close enough to its question.

The question is embedded as a query, the nearest visible chunks are found, and those below the
similarity floor (``NGX_RETRIEVAL_MIN_SIMILARITY``) are dropped, so an unrelated question injects
no context at all. `context` renders the kept chunks as numbered sources the model is told to cite.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from shared.agent.tools import Tool, ToolContext
from shared.retrieval.embeddings import Embedder
from shared.retrieval.vector import Hit, VectorSearch, visible_to
from shared.settings import Settings

RETRIEVE = "retrieve"  # the built-in tool's name (no tools file may declare it)
CITE = (
    "Answer from the sources below when they hold the answer, and cite each one you use as [n]. "
    "If they do not answer the question, say so rather than guess."
)


class Retriever:
    """Finds the context of a question; one per process."""

    def __init__(self, settings: Settings, embedder: Embedder, search: VectorSearch) -> None:
        self._settings = settings
        self._embedder = embedder
        self._search = search

    async def retrieve(self, question: str, subject: str, tenant: str | None = None) -> list[Hit]:
        """The chunks to give the model, best first (none when nothing is close enough)."""
        s = self._settings
        [vector] = await self._embedder.embed([question[:8000]], "RETRIEVAL_QUERY")
        hits = await self._search.nearest(vector, visible_to(subject, tenant), s.retrieval_top_k)
        return [h for h in hits if h.similarity >= s.retrieval_min_similarity]


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


def retrieve_tool(retriever: Retriever) -> Tool:
    """The built-in ``retrieve`` tool (retrieval ``tool``): the model looks the corpus up itself.

    Its result lists numbered passages and, under ``sources``, what the answer then cites."""

    async def run(arguments: BaseModel, context: ToolContext) -> dict[str, Any]:
        assert isinstance(arguments, RetrieveArguments)
        hits = await retriever.retrieve(arguments.query, context.subject)
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
        cache_ttl_s=60,
        private=True,  # what a caller may see depends on who asks: cached per caller
    )
