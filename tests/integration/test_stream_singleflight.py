"""Single-flight streams: identical concurrent stream requests, on any instance, make one model
call; every caller receives the whole answer; the answer lands in the response cache."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import LocalStack, start_function
from tests.integration.test_stream_resume import read_events, text_of


@pytest.fixture
def stream_urls(stack: LocalStack) -> Iterator[list[str]]:
    """Three stream function instances on the same Redis, Firestore and model."""
    started = [start_function(stack.settings, "stream") for _ in range(2)]
    yield [stack.url("stream")] + [url for url, _ in started]
    for _, process in started:
        process.terminate()
        process.wait(10)


async def ask(client: httpx.AsyncClient, url: str, headers: dict[str, str], body: Any) -> Any:
    async with client.stream("POST", f"{url}/v1/chat:stream", json=body, headers=headers) as r:
        assert r.status_code == 200, await r.aread()
        events, _ = await read_events(r)
    return events


async def test_200_identical_streams_on_three_instances_make_one_model_call(
    stack: LocalStack, stream_urls: list[str]
) -> None:
    stack.fault("gemini-2.5-flash", slow_stream_ms=40)  # long enough for all to overlap
    body = {"message": "tell me about single flight"}
    limits = httpx.Limits(max_connections=250)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        answers = await asyncio.gather(
            *(ask(client, stream_urls[n % 3], stack.auth(f"user{n}"), body) for n in range(200))
        )
        assert stack.model_calls()["calls"] == {"gemini-2.5-flash": {"StreamGenerateContent": 1}}
        texts = {text_of(events) for events in answers}
        assert len(texts) == 1 and texts != {""}
        assert all([e["event"] for e in events][-2:] == ["usage", "done"] for events in answers)
        cached = [events[-2]["data"]["cached"] for events in answers]
        assert cached.count(False) == 1  # the caller whose request called the model pays for it


async def test_a_shared_stream_lands_in_the_response_cache(
    stack: LocalStack, stream_urls: list[str]
) -> None:
    """The finished answer is cached like a chat answer: chat is then served from it. (Apart from
    the 200-stream test: under that load this machine's Redis may answer too late for a cache
    write, which the cache then skips, as it would in production.)"""
    stack.fault("gemini-2.5-flash", slow_stream_ms=20)
    body = {"message": "cache me once"}
    async with httpx.AsyncClient(timeout=60) as client:
        answers = await asyncio.gather(
            *(ask(client, stream_urls[n % 3], stack.auth(f"user{n}"), body) for n in range(6))
        )
        reply = await client.post(f"{stack.url('chat')}/v1/chat", json=body, headers=stack.auth())
    assert reply.status_code == 200
    assert reply.json()["usage"]["cached"] is True
    assert {reply.json()["text"]} == {text_of(events) for events in answers}
    assert stack.model_calls()["calls"] == {"gemini-2.5-flash": {"StreamGenerateContent": 1}}


async def test_the_first_callers_leaving_does_not_cut_the_others(
    stack: LocalStack, stream_urls: list[str]
) -> None:
    """The caller whose request started the model stream drops after two deltas; a caller on
    another instance still receives the whole answer, from that one model call."""
    stack.fault("gemini-2.5-flash", slow_stream_ms=60)
    body = {"message": "the first one leaves early"}
    async with httpx.AsyncClient(timeout=60) as client:
        url = f"{stream_urls[0]}/v1/chat:stream"
        async with client.stream("POST", url, json=body, headers=stack.auth("first")) as r:
            await read_events(r, stop_after_deltas=1)
            other = asyncio.create_task(ask(client, stream_urls[1], stack.auth("other"), body))
            await asyncio.sleep(0.3)
        events = await other
    assert [e["event"] for e in events][-2:] == ["usage", "done"]
    assert stack.model_calls()["calls"] == {"gemini-2.5-flash": {"StreamGenerateContent": 1}}
    assert stack.model_calls()["cancelled"] == {}


async def test_a_failing_model_fails_every_shared_caller_like_chat(
    stack: LocalStack, stream_urls: list[str]
) -> None:
    """Before the first token nothing is sent: every caller of the shared stream gets the same
    plain HTTP error with Retry-After, and the model is not called once per caller."""
    stack.fault("*", error_rate=1.0, latency_ms=200)
    body = {"message": "nobody can answer this"}
    async with httpx.AsyncClient(timeout=60) as client:
        replies = await asyncio.gather(
            *(
                client.post(
                    f"{stream_urls[n % 3]}/v1/chat:stream", json=body, headers=stack.auth(f"u{n}")
                )
                for n in range(30)
            )
        )
    assert {r.status_code for r in replies} == {503}
    assert all(r.headers.get("retry-after") for r in replies)
    calls = sum(sum(m.values()) for m in stack.model_calls()["calls"].values())
    assert calls < 30


async def test_a_follower_never_hands_out_an_answer_with_a_piece_missing(
    stack: LocalStack,
) -> None:
    """Should a write of the shared stream be lost, its followers fail instead of answering
    with a gap."""
    from shared import errors
    from shared.llm.cache import ResponseCache, fill_key, request_key
    from shared.llm.flights import StreamFlights
    from shared.llm.types import CallStats, LlmRequest, Turn
    from shared.memorystore import Memorystore

    settings = stack.client_settings()
    store = Memorystore(settings)
    cache = ResponseCache(store)
    request = LlmRequest(turns=(Turn("user", "gappy"),), query_class="chat")
    key = request_key(request, "gemini-2.5-flash")

    async def never(*_: Any) -> Any:
        raise AssertionError("the model must not be called")
        yield

    assert await cache.try_lock(key, "another-instance", 30)
    raw: Any = store.redis
    for entry in ({"n": "1", "t": "one", "f": ""}, {"n": "3", "t": " three", "f": "STOP"}):
        await raw.xadd(fill_key(key, "another-instance"), entry)
    flights = StreamFlights(settings, cache, never)
    with pytest.raises(errors.UpstreamError, match="cut"):
        async for _ in flights.join(key, request, ["gemini-2.5-flash"], CallStats()):
            pass
    await store.close()


async def test_a_follower_reads_the_current_holders_stream_once_per_chunk(
    stack: LocalStack,
) -> None:
    """An earlier flight's stream (a piece of an answer, then its error) is never read as the
    current one's, and a chunk written twice (a retried write) is taken once."""
    import json as json_

    from shared.llm.cache import ResponseCache, fill_key, request_key
    from shared.llm.flights import StreamFlights
    from shared.llm.types import CallStats, LlmChunk, LlmRequest, LlmResult, Turn
    from shared.memorystore import Memorystore

    settings = stack.client_settings()
    store = Memorystore(settings)
    cache = ResponseCache(store)
    request = LlmRequest(turns=(Turn("user", "again"),), query_class="chat")
    key = request_key(request, "gemini-2.5-flash")
    raw: Any = store.redis
    for entry in ({"n": "1", "t": "stale", "f": ""}, {"e": "upstream_error", "m": "old", "ra": ""}):
        await raw.xadd(fill_key(key, "earlier-holder"), entry)
    assert await cache.try_lock(key, "current-holder", 30)
    result = LlmResult(text="fresh answer", model="gemini-2.5-flash")
    for entry in (
        {"n": "1", "t": "fresh", "f": ""},
        {"n": "1", "t": "fresh", "f": ""},
        {"n": "2", "t": " answer", "f": "STOP"},
        {"r": json_.dumps({"text": result.text, "model": result.model})},
    ):
        await raw.xadd(fill_key(key, "current-holder"), entry)

    async def never(*_: Any) -> Any:
        raise AssertionError("the model must not be called")
        yield

    flights = StreamFlights(settings, cache, never)
    items = [i async for i in flights.join(key, request, ["gemini-2.5-flash"], CallStats())]
    text = "".join(i.text for i in items if isinstance(i, LlmChunk))
    assert text == "fresh answer"
    assert isinstance(items[-1], LlmResult) and items[-1].cached
    await store.close()
