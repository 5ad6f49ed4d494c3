"""The Vertex AI Vector Search backend, driven by the real `aiplatform_v1` clients against a gRPC
fake of its data plane: ingestion upserts and removes datapoints beside the Firestore chunks;
queries carry the visibility allow-list and the ScaNN knobs from settings; neighbours whose chunk
is gone are dropped; another user's private chunks are never returned. And re-ranking through
the ranking API (a gRPC fake of Discovery Engine's RankService), shown by `agentctl corpus eval`."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from emulator.grpc_server import serve
from emulator.ranking import RankingFake
from emulator.settings import free_ports
from emulator.vector_search import VectorSearchFake
from shared.errors import SettingsError
from shared.llm.resilience import Resilience
from shared.llm.transport import VertexTransport
from shared.memorystore import Memorystore
from shared.retrieval.corpus import CorpusStore, IngestReport
from shared.retrieval.embeddings import Embedder
from shared.retrieval.published import CorpusView
from shared.retrieval.retriever import Retriever
from shared.retrieval.sources import document
from shared.retrieval.vertex_vector import VertexVectorSearch
from shared.settings import load_settings
from tests.conftest import LocalStack

DATA = Path(__file__).resolve().parents[1] / "data"
PREFIX = "https://help.lumen-notes.example/"
ENDPOINT = "projects/ngx-local/locations/us-central1/indexEndpoints/42"
INDEX = "projects/ngx-local/locations/us-central1/indexes/7"


@pytest.fixture
def fake() -> Iterator[tuple[VectorSearchFake, str]]:
    port = free_ports(1)[0]
    found = VectorSearchFake(dimensions=256)
    server = serve(found, "127.0.0.1", port)
    yield found, f"127.0.0.1:{port}"
    server.stop(0)


def vertex_env(address: str) -> dict[str, str]:
    return {
        "NGX_VECTOR_BACKEND": "vertex",
        "NGX_VECTOR_SEARCH_GRPC": address,
        "NGX_VECTOR_SEARCH_INDEX_ENDPOINT": ENDPOINT,
        "NGX_VECTOR_SEARCH_DEPLOYED_INDEX_ID": "ngx_corpus",
        "NGX_VECTOR_SEARCH_INDEX": INDEX,
        "NGX_VECTOR_SEARCH_APPROXIMATE_NEIGHBORS": "150",
        "NGX_VECTOR_SEARCH_LEAF_FRACTION": "0.1",
    }


@pytest.fixture
async def parts(
    stack: LocalStack, firestore_db: Any, fake: tuple[VectorSearchFake, str]
) -> AsyncIterator[dict[str, Any]]:
    settings = stack.client_settings(
        **{k[4:].lower(): v for k, v in vertex_env(fake[1]).items()},
        retrieval_mode="vector",
        retrieval_cache_ttl_s=0,
    )
    transport, store = VertexTransport(settings), Memorystore(settings)
    embedder = Embedder(settings, transport, Resilience(settings), store)
    backend = VertexVectorSearch(firestore_db, settings)
    yield {
        "corpus": CorpusStore(firestore_db, embedder, backend),
        "retriever": Retriever(settings, embedder, backend, CorpusView(firestore_db, settings)),
        "backend": backend,
    }
    await backend.close()
    await transport.close()
    await store.close()


async def ingest_corpus(corpus: CorpusStore) -> IngestReport:
    report = IngestReport()
    for path in sorted((DATA / "corpus").iterdir()):
        await corpus.ingest(document(PREFIX + path.name, path.read_bytes()), report)
    private = b"# Where my recovery codes are\n\nMy recovery codes are in the blue drawer."
    await corpus.ingest(document("priv://alice/codes.md", private, "user:alice"), report)
    return report


async def test_ingestion_upserts_and_queries_carry_the_allow_list_and_knobs(
    parts: dict[str, Any], fake: tuple[VectorSearchFake, str]
) -> None:
    vectors, _ = fake
    report = await ingest_corpus(parts["corpus"])
    assert len(vectors.points) == report.chunks > 20
    hits = await parts["retriever"].retrieve("How do I reset my password?", "user:bob")
    assert hits[0].uri == PREFIX + "reset-password.md" and 0 < hits[0].similarity <= 1
    query = vectors.queries[-1]
    assert query["approximate_neighbor_count"] == 150
    assert query["fraction_leaf_nodes_to_search_override"] == pytest.approx(0.1)
    assert query["restricts"] == {"visibility": (["public", "user:bob"], [])}


async def test_another_users_private_chunks_are_never_returned(parts: dict[str, Any]) -> None:
    await ingest_corpus(parts["corpus"])
    questions = [json.loads(line)["question"] for line in (DATA / "questions.jsonl").open()]
    for question in [*questions, "Where are my recovery codes? blue drawer"]:
        for subject in ("user:bob", None):
            hits = await parts["retriever"].retrieve(question, subject)
            assert all(not h.uri.startswith("priv://") for h in hits), (question, subject)
    mine = await parts["retriever"].retrieve(
        "Where are my recovery codes? blue drawer", "user:alice"
    )
    assert mine[0].uri == "priv://alice/codes.md"


async def test_replaced_and_removed_documents_leave_no_datapoints(
    parts: dict[str, Any], fake: tuple[VectorSearchFake, str]
) -> None:
    vectors, _ = fake
    corpus: CorpusStore = parts["corpus"]
    long = "\n\n".join(f"## Part {n}\n\n" + "Sync details and more words. " * 60 for n in range(4))
    report = IngestReport()
    await corpus.ingest(document(PREFIX + "long.md", f"# Long\n\n{long}".encode()), report)
    before = len(vectors.points)
    assert before == report.chunks > 1
    await corpus.ingest(document(PREFIX + "long.md", b"# Long\n\nNow short."), report)
    assert len(vectors.points) == 1
    await corpus.remove(PREFIX + "long.md", report)
    assert vectors.points == {}


async def test_a_neighbour_whose_chunk_is_gone_is_dropped(
    parts: dict[str, Any], fake: tuple[VectorSearchFake, str]
) -> None:
    await ingest_corpus(parts["corpus"])
    [vector] = await parts["retriever"].embedder.embed(["reset password"], "RETRIEVAL_DOCUMENT")
    await parts["backend"].upsert([("ghost_0000", vector, "public", ())])  # never in Firestore
    hits = await parts["retriever"].retrieve("reset password", "user:bob")
    assert hits and all(h.chunk_id != "ghost_0000" for h in hits)


def test_an_incomplete_vector_search_setting_is_refused() -> None:
    with pytest.raises(SettingsError, match="vector_search_index_endpoint"):
        load_settings(environment="test", vector_backend="vertex")


def test_eval_shows_the_rerankers_gain_and_latency(
    stack: LocalStack, fake: tuple[VectorSearchFake, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    vectors, address = fake
    port = free_ports(1)[0]
    ranking = RankingFake()
    server = serve(ranking, "127.0.0.1", port)
    for name, value in vertex_env(address).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("NGX_RANKING_GRPC", f"127.0.0.1:{port}")
    try:
        done = stack.agentctl(
            "corpus", "ingest", str(DATA / "corpus"), "--uri-prefix", PREFIX, "--json"
        )
        assert done.returncode == 0, done.stderr
        assert len(vectors.points) == json.loads(done.stdout)["chunks"]
        done = stack.agentctl("corpus", "eval", str(DATA / "questions.jsonl"), "--rerank", "--json")
    finally:
        server.stop(0)
    assert done.returncode == 0, done.stderr
    modes = json.loads(done.stdout)["modes"]
    assert list(modes) == ["vector", "bm25", "hybrid", "hybrid+rerank"]
    print(
        {m: (s["recall"]["5"], s["mrr"], round(s["latency_ms_p50"], 1)) for m, s in modes.items()}
    )
    assert ranking.requests and all(r["records"] <= 20 for r in ranking.requests)
    assert modes["hybrid+rerank"]["recall"]["5"] >= 0.8
