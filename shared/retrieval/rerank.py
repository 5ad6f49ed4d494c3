"""Optional re-ranking of the fused candidates through Vertex AI's ranking API (Discovery Engine
``RankService.Rank``, the SDK's own client), off unless ``NGX_RETRIEVAL_RERANK`` is set.

The best ``NGX_RETRIEVAL_RERANK_CANDIDATES`` chunks that passed the floor are sent with the
question; the service scores each record's relevance and the top ``NGX_RETRIEVAL_TOP_K`` in its
order are kept. A ranking call that fails keeps the fused order (logged): re-ranking may only
improve an answer, never fail it. ``google-cloud-discoveryengine`` is imported on first use.
"""

from __future__ import annotations

import logging
from typing import Any

from shared.grpc_clients import gapic_client
from shared.retrieval.vector import Hit
from shared.settings import Settings

log = logging.getLogger("ngx.retrieval")


class Reranker:
    """Orders candidates by the ranking API's relevance scores; one per process."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._client: Any = None

    def _rank_client(self) -> Any:
        if self._client is None:
            from google.cloud.discoveryengine_v1.services.rank_service import (
                async_client,
                transports,
            )

            self._client = gapic_client(
                async_client.RankServiceAsyncClient,
                transports.RankServiceGrpcAsyncIOTransport,
                self._settings.ranking_grpc,
            )
        return self._client

    async def rerank(self, question: str, hits: list[Hit], top_k: int) -> list[Hit]:
        """``hits`` re-ordered by relevance to ``question``, the best ``top_k`` kept."""
        if len(hits) <= 1:
            return hits[:top_k]
        from google.api_core import exceptions
        from google.cloud.discoveryengine_v1.types import rank_service

        s = self._settings
        config = f"projects/{s.project_id}/locations/global/rankingConfigs/default_ranking_config"
        request = rank_service.RankRequest(
            ranking_config=config,
            model=s.ranking_model,
            top_n=top_k,
            query=question[:2000],
            records=[
                rank_service.RankingRecord(
                    id=str(n), title=f"{h.title} — {h.section}".strip(" —"), content=h.text
                )
                for n, h in enumerate(hits)
            ],
            ignore_record_details_in_response=True,
        )
        try:
            response = await self._rank_client().rank(request, timeout=s.vertex_deadline_s)
        except (exceptions.GoogleAPICallError, exceptions.RetryError) as exc:
            log.warning("re-ranking failed; the fused order stands", extra={"why": str(exc)})
            return hits[:top_k]
        ranked = [
            hits[int(r.id)] for r in response.records if r.id.isdigit() and int(r.id) < len(hits)
        ]
        return ranked[:top_k] or hits[:top_k]

    async def close(self) -> None:
        if self._client is not None:
            await self._client.transport.close()
