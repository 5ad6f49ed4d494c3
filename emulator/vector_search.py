"""A gRPC fake of Vertex AI Vector Search's data plane: ``IndexService.UpsertDatapoints`` and
``RemoveDatapoints`` (streaming updates) and ``MatchService.FindNeighbors`` on a deployed index,
speaking the SDK's own protobuf messages so the real ``aiplatform_v1`` clients drive it.

One index of the given dimensions; search is exact (cosine, ``COSINE_DISTANCE`` = 1 − cosine,
nearest first) over datapoints whose restricts pass the query's: for each namespace the query
names, the datapoint's tokens must meet the allow-list and avoid the deny-list. The ScaNN knobs a
query carries (approximate neighbour count, fraction of leaves) are recorded in ``queries`` for
tests to check, and validated as the service does (fraction within 0…1).

    python -m emulator.vector_search --port 8796 [--dimensions 256]
"""

from __future__ import annotations

import argparse
import math
import threading
from typing import Any

import grpc

from emulator.grpc_server import abort, serve, unary

MATCH = "google.cloud.aiplatform.v1.MatchService"
INDEX = "google.cloud.aiplatform.v1.IndexService"


class VectorSearchFake:
    """Datapoints in memory; every call recorded."""

    def __init__(self, dimensions: int = 256, deployed_index_id: str = "ngx_corpus") -> None:
        from google.cloud.aiplatform_v1.types import index, index_service, match_service

        self.types = (index, index_service, match_service)
        self.dimensions = dimensions
        self.deployed_index_id = deployed_index_id
        self.points: dict[str, tuple[list[float], dict[str, set[str]]]] = {}
        self.queries: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def upsert(self, request: Any, context: grpc.ServicerContext) -> Any:
        _, service, _ = self.types
        for point in request.datapoints:
            vector = list(point.feature_vector)
            if len(vector) != self.dimensions:
                abort(
                    context,
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"datapoint {point.datapoint_id}: {len(vector)} dimensions, "
                    f"the index has {self.dimensions}",
                )
            restricts = {r.namespace: set(r.allow_list) for r in point.restricts}
            with self._lock:
                self.points[point.datapoint_id] = (_unit(vector), restricts)
        return service.UpsertDatapointsResponse.pb()()

    def remove(self, request: Any, context: grpc.ServicerContext) -> Any:
        _, service, _ = self.types
        with self._lock:
            for datapoint_id in request.datapoint_ids:
                self.points.pop(datapoint_id, None)
        return service.RemoveDatapointsResponse.pb()()

    def find(self, request: Any, context: grpc.ServicerContext) -> Any:
        index, _, match = self.types
        if request.deployed_index_id != self.deployed_index_id:
            abort(
                context, grpc.StatusCode.NOT_FOUND, f"no deployed index {request.deployed_index_id}"
            )
        response = match.FindNeighborsResponse()
        for query in request.queries:
            fraction = query.fraction_leaf_nodes_to_search_override
            if not 0 <= fraction <= 1:
                abort(
                    context,
                    grpc.StatusCode.INVALID_ARGUMENT,
                    "fraction_leaf_nodes_to_search_override must be within [0, 1]",
                )
            self.queries.append(
                {
                    "neighbor_count": query.neighbor_count,
                    "approximate_neighbor_count": query.approximate_neighbor_count,
                    "fraction_leaf_nodes_to_search_override": fraction,
                    "restricts": {
                        r.namespace: (list(r.allow_list), list(r.deny_list))
                        for r in query.datapoint.restricts
                    },
                }
            )
            target = _unit(list(query.datapoint.feature_vector))
            with self._lock:
                scored = [
                    (1.0 - sum(a * b for a, b in zip(target, vector, strict=True)), point_id)
                    for point_id, (vector, restricts) in self.points.items()
                    if _passes(restricts, query.datapoint.restricts)
                ]
            scored.sort()
            neighbors = [
                match.FindNeighborsResponse.Neighbor(
                    datapoint=index.IndexDatapoint(datapoint_id=point_id), distance=distance
                )
                for distance, point_id in scored[: query.neighbor_count or 10]
            ]
            response.nearest_neighbors.append(
                match.FindNeighborsResponse.NearestNeighbors(
                    id=query.datapoint.datapoint_id, neighbors=neighbors
                )
            )
        return match.FindNeighborsResponse.pb(response)

    def handlers(self) -> list[grpc.GenericRpcHandler]:
        _, service, match = self.types

        return [
            grpc.method_handlers_generic_handler(
                MATCH, {"FindNeighbors": unary(self.find, match.FindNeighborsRequest.pb())}
            ),
            grpc.method_handlers_generic_handler(
                INDEX,
                {
                    "UpsertDatapoints": unary(self.upsert, service.UpsertDatapointsRequest.pb()),
                    "RemoveDatapoints": unary(self.remove, service.RemoveDatapointsRequest.pb()),
                },
            ),
        ]


def _unit(vector: list[float]) -> list[float]:
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [v / norm for v in vector]


def _passes(tokens: dict[str, set[str]], restricts: Any) -> bool:
    """Vector Search's token restricts: per namespace, allowed and not denied."""
    for restrict in restricts:
        have = tokens.get(restrict.namespace, set())
        if restrict.allow_list and not have & set(restrict.allow_list):
            return False
        if have & set(restrict.deny_list):
            return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dimensions", type=int, default=256)
    args = parser.parse_args()
    serve(VectorSearchFake(args.dimensions), args.host, args.port).wait_for_termination()


if __name__ == "__main__":
    main()
