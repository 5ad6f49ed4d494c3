"""Embeddings through the real aiplatform_v1 client against the emulator: unit vectors in order,
similar texts near, batches within the API's limits, cached so no text is embedded twice."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from shared.llm.resilience import Resilience
from shared.llm.transport import VertexTransport
from shared.memorystore import Memorystore
from shared.retrieval.embeddings import Embedder, batches
from tests.conftest import LocalStack

Factory = Callable[..., Embedder]


@pytest.fixture
async def make_embedder(stack: LocalStack) -> AsyncIterator[Factory]:
    made: list[tuple[VertexTransport, Memorystore | None]] = []

    def factory(cache: bool = True, **overrides: Any) -> Embedder:
        settings = stack.client_settings(**overrides)
        transport = VertexTransport(settings)
        store = Memorystore(settings) if cache else None
        made.append((transport, store))
        return Embedder(settings, transport, Resilience(settings), store)

    yield factory
    for transport, store in made:
        await transport.close()
        if store is not None:
            await store.close()


def embedded(stack: LocalStack) -> int:
    count: int = httpx.get(f"{stack.vertex_admin}/calls", timeout=5).json()["embedded_texts"]
    return count


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


async def test_vectors_are_unit_length_in_order_and_similar_texts_are_near(
    stack: LocalStack, make_embedder: Factory
) -> None:
    texts = [
        "How do I reset my password?",
        "Resetting your password: open Settings, then Security, then Reset password.",
        "Orders to Europe ship within five working days.",
    ]
    query, answer, unrelated = await make_embedder().embed(texts, "RETRIEVAL_DOCUMENT")
    for vector in (query, answer, unrelated):
        assert len(vector) == 256
        assert math.isclose(math.sqrt(sum(v * v for v in vector)), 1.0, rel_tol=1e-5)
    assert cosine(query, answer) > 0.5 > cosine(query, unrelated) + 0.3
    assert embedded(stack) == 3
    assert stack.model_calls()["calls"]["text-embedding-005"] == {"Predict": 1}


async def test_a_cached_text_is_never_embedded_again(
    stack: LocalStack, make_embedder: Factory
) -> None:
    embedder = make_embedder()
    first = await embedder.embed(["alpha beta", "gamma delta"], "RETRIEVAL_DOCUMENT")
    again = await make_embedder().embed(
        ["gamma delta", "alpha beta", "epsilon"], "RETRIEVAL_DOCUMENT"
    )
    assert again[0] == pytest.approx(first[1], abs=1e-6)
    assert again[1] == pytest.approx(first[0], abs=1e-6)
    assert embedded(stack) == 3  # two, then only the new one
    # A query is embedded for its own task: another key.
    await embedder.embed(["alpha beta"], "RETRIEVAL_QUERY")
    assert embedded(stack) == 4


async def test_requests_stay_within_the_apis_limits(
    stack: LocalStack, make_embedder: Factory
) -> None:
    texts = [f"document number {n} about topic {n % 7}" for n in range(600)]
    vectors = await make_embedder(cache=False).embed(texts, "RETRIEVAL_DOCUMENT")
    assert len(vectors) == 600
    assert stack.model_calls()["calls"]["text-embedding-005"] == {"Predict": 3}  # 250 + 250 + 100


def test_batches_split_by_count_and_by_tokens() -> None:
    assert [len(b) for b in batches(["x"] * 600, 250, 20_000)] == [250, 250, 100]
    long = ["word " * 2000] * 5  # ≈ 2,500 estimated tokens each
    assert [len(b) for b in batches(long, 250, 6_000)] == [2, 2, 1]
    assert batches(["w" * 100_000], 250, 6_000) == [[0]]  # one text over the limit still goes


async def test_a_failing_embedding_call_is_retried(
    stack: LocalStack, make_embedder: Factory
) -> None:
    stack.fault("text-embedding-005", fail_first=2)
    vectors = await make_embedder(retry_initial_s=0.01).embed(["retry me"], "RETRIEVAL_QUERY")
    assert len(vectors) == 1
    assert stack.model_calls()["calls"]["text-embedding-005"] == {"Predict": 3}
