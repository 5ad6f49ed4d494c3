"""A gRPC fake of Discovery Engine's ``RankService.Rank`` (Vertex AI's ranking API), speaking the
SDK's own messages so the real ``discoveryengine_v1`` client drives it.

A record's score is how well its best sentence — or its title — matches the query, by the Vertex
emulator's embeddings (cosine), so a long chunk holding one exactly relevant sentence outranks a
chunk that is loosely about everything: the cross-encoder behaviour a ranking model adds over
whole-chunk embeddings. Records come back best first, ``top_n`` of them; every request is kept
in ``requests`` for tests.

    python -m emulator.ranking --port 8797
"""

from __future__ import annotations

import argparse
import re
from typing import Any

import grpc

from emulator.grpc_server import abort, serve, unary
from emulator.vertex.embeddings import embed

RANK = "google.cloud.discoveryengine.v1.RankService"
SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
MAX_RECORDS = 200  # the API's limit per request


class RankingFake:
    def __init__(self) -> None:
        from google.cloud.discoveryengine_v1.types import rank_service

        self.types = rank_service
        self.requests: list[dict[str, Any]] = []

    def rank(self, request: Any, context: grpc.ServicerContext) -> Any:
        if len(request.records) > MAX_RECORDS:
            abort(context, grpc.StatusCode.INVALID_ARGUMENT, f"at most {MAX_RECORDS} records")
        if not request.query:
            abort(context, grpc.StatusCode.INVALID_ARGUMENT, "query is required")
        self.requests.append({"model": request.model, "records": len(request.records)})
        query = embed(request.query)
        scored = []
        for record in request.records:
            pieces = [record.title, *SENTENCE.split(record.content)]
            best = max(
                (sum(a * b for a, b in zip(query, embed(p), strict=True)) for p in pieces if p),
                default=0.0,
            )
            scored.append((max(best, 0.0), record.id))
        scored.sort(key=lambda item: -item[0])
        top = scored[: request.top_n or len(scored)]
        response = self.types.RankResponse(
            records=[self.types.RankingRecord(id=rid, score=score) for score, rid in top]
        )
        return self.types.RankResponse.pb(response)

    def handlers(self) -> list[grpc.GenericRpcHandler]:
        handler = unary(self.rank, self.types.RankRequest.pb())
        return [grpc.method_handlers_generic_handler(RANK, {"Rank": handler})]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    serve(RankingFake(), args.host, args.port).wait_for_termination()


if __name__ == "__main__":
    main()
