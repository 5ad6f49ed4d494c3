"""The second vector backend: Vertex AI Vector Search, for corpora beyond Firestore's comfort.

Chunks stay in Firestore (the system of record: text, metadata, erasure); their embeddings are
also upserted to a Vector Search index (streaming updates) with a ``visibility`` restrict and
``tags``, and queried through the index endpoint's ``FindNeighbors`` with the caller's
visibility as an allow-list — another user's private chunks are never candidates. The ScaNN
knobs are settings: ``NGX_VECTOR_SEARCH_APPROXIMATE_NEIGHBORS`` (candidates gathered before
exact re-scoring) and ``NGX_VECTOR_SEARCH_LEAF_FRACTION`` (share of the tree's leaves searched,
the analogue of HNSW ``efSearch`` / IVF ``nprobe``: higher finds more true neighbours, slower);
0 leaves each at the index's own default. Neighbours are then read from Firestore in one
``get_all``: a chunk removed there (or expired) is dropped, so the index may lag safely.

Both clients are the SDK's own (``MatchServiceAsyncClient``, ``IndexServiceAsyncClient``), over a
local channel when ``NGX_VECTOR_SEARCH_GRPC`` names one (the tests' fake).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from shared.grpc_clients import gapic_client
from shared.llm import sdk
from shared.retrieval.names import CHUNKS
from shared.retrieval.vector import Hit, hit_of
from shared.settings import Settings

VISIBILITY = "visibility"
TAGS = "tags"


class VertexVectorSearch:
    """Nearest chunks through a deployed Vector Search index; one per process."""

    def __init__(self, db: Any, settings: Settings) -> None:
        self._db = db
        self._settings = settings
        self._match: Any = None
        self._index: Any = None

    def _match_client(self) -> Any:
        if self._match is None:
            module = sdk.load("services.match_service.async_client")
            transports = sdk.load("services.match_service.transports.grpc_asyncio")
            self._match = gapic_client(
                module.MatchServiceAsyncClient,
                transports.MatchServiceGrpcAsyncIOTransport,
                self._settings.vector_search_grpc,
                client_options={"api_endpoint": self._settings.vector_search_endpoint},
            )
        return self._match

    def _index_client(self) -> Any:
        if self._index is None:
            module = sdk.load("services.index_service.async_client")
            transports = sdk.load("services.index_service.transports.grpc_asyncio")
            api = f"{self._settings.vertex_location}-aiplatform.googleapis.com"
            self._index = gapic_client(
                module.IndexServiceAsyncClient,
                transports.IndexServiceGrpcAsyncIOTransport,
                self._settings.vector_search_grpc,
                client_options={"api_endpoint": api},
            )
        return self._index

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
        types = sdk.load("types.match_service")
        index = sdk.load("types.index")
        s = self._settings
        query = types.FindNeighborsRequest.Query(
            datapoint=index.IndexDatapoint(
                datapoint_id="query",
                feature_vector=vector,
                restricts=[
                    index.IndexDatapoint.Restriction(namespace=VISIBILITY, allow_list=visibility),
                    *(
                        [index.IndexDatapoint.Restriction(namespace=TAGS, allow_list=tags)]
                        if tags
                        else []
                    ),
                ],
            ),
            neighbor_count=limit + margin,
            approximate_neighbor_count=s.vector_search_approximate_neighbors,
            fraction_leaf_nodes_to_search_override=s.vector_search_leaf_fraction,
        )
        response = await self._match_client().find_neighbors(
            types.FindNeighborsRequest(
                index_endpoint=s.vector_search_index_endpoint,
                deployed_index_id=s.vector_search_deployed_index_id,
                queries=[query],
            ),
            timeout=s.vertex_deadline_s,
        )
        neighbors = response.nearest_neighbors[0].neighbors if response.nearest_neighbors else []
        distances = {n.datapoint.datapoint_id: float(n.distance) for n in neighbors}
        if not distances:
            return []
        refs = [self._db.collection(CHUNKS).document(i) for i in distances]
        now = datetime.now(UTC)
        found: dict[str, Hit] = {}
        async for snapshot in self._db.get_all(refs):
            data = snapshot.to_dict() if snapshot.exists else None
            if data is None or data.get("visibility") not in visibility:
                continue  # removed since it was indexed (or its restrict was stale)
            if tags and not set(tags) & set(data.get("tags") or ()):
                continue
            expires = data.get("expires_at")
            if expires is not None and expires <= now:
                continue
            found[snapshot.id] = hit_of(snapshot.id, data, 1.0 - distances[snapshot.id])
        ranked = [found[i] for i in distances if i in found]  # the index's order
        return ranked[:limit]

    async def upsert(self, chunks: Sequence[tuple[str, list[float], str, Sequence[str]]]) -> None:
        """Add or replace datapoints: (chunk id, embedding, visibility, tags) each."""
        if not chunks:
            return
        service = sdk.load("types.index_service")
        index = sdk.load("types.index")
        points = [
            index.IndexDatapoint(
                datapoint_id=chunk_id,
                feature_vector=vector,
                restricts=[
                    index.IndexDatapoint.Restriction(namespace=VISIBILITY, allow_list=[visibility]),
                    index.IndexDatapoint.Restriction(namespace=TAGS, allow_list=list(tags)),
                ],
            )
            for chunk_id, vector, visibility, tags in chunks
        ]
        for start in range(0, len(points), 1000):
            await self._index_client().upsert_datapoints(
                service.UpsertDatapointsRequest(
                    index=self._settings.vector_search_index,
                    datapoints=points[start : start + 1000],
                ),
                timeout=self._settings.vertex_deadline_s,
            )

    async def remove(self, chunk_ids: Sequence[str]) -> None:
        """Remove datapoints (absent ones are no error)."""
        if not chunk_ids:
            return
        service = sdk.load("types.index_service")
        for start in range(0, len(chunk_ids), 1000):
            await self._index_client().remove_datapoints(
                service.RemoveDatapointsRequest(
                    index=self._settings.vector_search_index,
                    datapoint_ids=list(chunk_ids[start : start + 1000]),
                ),
                timeout=self._settings.vertex_deadline_s,
            )

    async def close(self) -> None:
        for client in (self._match, self._index):
            if client is not None:
                await client.transport.close()
