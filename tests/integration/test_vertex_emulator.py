"""The unmodified aiplatform_v1 async client against the Vertex emulator (insecure channel)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from google.api_core import exceptions
from google.cloud import aiplatform_v1
from google.cloud.aiplatform_v1.services.llm_utility_service.transports.grpc_asyncio import (
    LlmUtilityServiceGrpcAsyncIOTransport,
)
from google.cloud.aiplatform_v1.services.prediction_service.transports.grpc_asyncio import (
    PredictionServiceGrpcAsyncIOTransport,
)

from tests.conftest import TEST_EMULATOR, LocalStack

MODEL = "projects/p/locations/us-central1/publishers/google/models/gemini-2.5-flash"


@pytest.fixture
async def channel(stack: LocalStack) -> AsyncIterator[grpc.aio.Channel]:
    chan = grpc.aio.insecure_channel(stack.vertex_endpoint)
    yield chan
    await chan.close()


@pytest.fixture
def prediction(channel: grpc.aio.Channel) -> aiplatform_v1.PredictionServiceAsyncClient:
    transport = PredictionServiceGrpcAsyncIOTransport(channel=channel)
    return aiplatform_v1.PredictionServiceAsyncClient(transport=transport)


def request(text: str, *, model: str = MODEL, system: str | None = None, **config: Any) -> Any:
    return aiplatform_v1.GenerateContentRequest(
        model=model,
        contents=[aiplatform_v1.Content(role="user", parts=[aiplatform_v1.Part(text=text)])],
        system_instruction=(
            aiplatform_v1.Content(parts=[aiplatform_v1.Part(text=system)]) if system else None
        ),
        generation_config=aiplatform_v1.GenerationConfig(**config),
    )


async def test_unary_answer_is_deterministic_with_usage(prediction: Any, stack: LocalStack) -> None:
    first = await prediction.generate_content(request=request("Tell me about caching"))
    second = await prediction.generate_content(request=request("Tell me about caching"))
    other = await prediction.generate_content(request=request("Tell me about retries"))
    text = first.candidates[0].content.parts[0].text
    assert text == second.candidates[0].content.parts[0].text
    assert text != other.candidates[0].content.parts[0].text
    usage = first.usage_metadata
    assert usage.prompt_token_count == 4
    assert (
        usage.candidates_token_count == len(text.split()) == stack.settings.emulator_answer_tokens
    )
    assert first.candidates[0].finish_reason == aiplatform_v1.Candidate.FinishReason.STOP
    assert stack.model_calls()["calls"] == {"gemini-2.5-flash": {"GenerateContent": 3}}


async def test_stream_chunks_are_spread_over_time(prediction: Any, stack: LocalStack) -> None:
    started = time.perf_counter()
    arrivals: list[float] = []
    parts: list[str] = []
    async for response in await prediction.stream_generate_content(request=request("Stream")):
        arrivals.append(time.perf_counter() - started)
        parts.append(response.candidates[0].content.parts[0].text)
    tokens = stack.settings.emulator_answer_tokens
    assert len(arrivals) == tokens // 4  # chunk_tokens = 4
    ttft = TEST_EMULATOR["emulator_ttft_ms"] / 1000
    per_chunk = 4 / TEST_EMULATOR["emulator_tokens_per_second"]
    assert arrivals[0] >= ttft * 0.9
    # Paced by the latency model, not delivered together at the end.
    assert arrivals[-1] - arrivals[0] >= (len(arrivals) - 1) * per_chunk * 0.8
    assert arrivals[len(arrivals) // 2] - arrivals[0] >= (len(arrivals) // 2) * per_chunk * 0.8
    whole = await prediction.generate_content(request=request("Stream"))
    assert "".join(parts) == whole.candidates[0].content.parts[0].text


async def test_last_stream_chunk_carries_finish_and_usage(prediction: Any) -> None:
    responses = [r async for r in await prediction.stream_generate_content(request=request("x y"))]
    last = responses[-1]
    assert last.candidates[0].finish_reason == aiplatform_v1.Candidate.FinishReason.STOP
    assert last.usage_metadata.prompt_token_count == 2
    assert last.usage_metadata.candidates_token_count > 0


async def test_unknown_model_is_not_found(prediction: Any) -> None:
    bad = MODEL.replace("gemini-2.5-flash", "gemini-9-ultra")
    with pytest.raises(exceptions.NotFound, match="gemini-9-ultra"):
        await prediction.generate_content(request=request("hi", model=bad))
    with pytest.raises(exceptions.NotFound):
        async for _ in await prediction.stream_generate_content(request=request("hi", model=bad)):
            pass


async def test_max_output_tokens_is_honoured(prediction: Any) -> None:
    response = await prediction.generate_content(request=request("hi", max_output_tokens=5))
    assert len(response.candidates[0].content.parts[0].text.split()) == 5
    assert response.candidates[0].finish_reason == aiplatform_v1.Candidate.FinishReason.MAX_TOKENS
    assert response.usage_metadata.candidates_token_count == 5


async def test_system_instruction_is_honoured(prediction: Any) -> None:
    plain = await prediction.generate_content(request=request("hi there"))
    guided = await prediction.generate_content(request=request("hi there", system="Be terse today"))
    assert guided.usage_metadata.prompt_token_count == 2 + 3
    assert guided.candidates[0].content.parts[0].text != plain.candidates[0].content.parts[0].text


async def test_count_tokens(channel: grpc.aio.Channel) -> None:
    client = aiplatform_v1.LlmUtilityServiceAsyncClient(
        transport=LlmUtilityServiceGrpcAsyncIOTransport(channel=channel)
    )
    response = await client.count_tokens(
        request=aiplatform_v1.CountTokensRequest(
            endpoint=MODEL,
            model=MODEL,
            contents=[aiplatform_v1.Content(role="user", parts=[aiplatform_v1.Part(text="a b c")])],
        )
    )
    assert response.total_tokens == 3


async def test_admin_ledger_resets_and_counts_cancellations(
    prediction: Any, stack: LocalStack
) -> None:
    await prediction.generate_content(request=request("one"))
    call = await prediction.stream_generate_content(request=request("two"))
    async for _ in call:
        break  # stop reading after the first chunk
    call.cancel()
    for _ in range(50):
        if stack.model_calls()["cancelled"]:
            break
        await asyncio.sleep(0.02)
    report = stack.model_calls()
    assert report["calls"]["gemini-2.5-flash"] == {"GenerateContent": 1, "StreamGenerateContent": 1}
    assert report["cancelled"] == {"gemini-2.5-flash": {"StreamGenerateContent": 1}}
    stack.reset()
    assert stack.model_calls() == {"calls": {}, "total": 0, "cancelled": {}, "embedded_texts": 0}
