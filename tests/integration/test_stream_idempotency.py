"""Idempotent streams: an ``Idempotency-Key`` (or ``request_id``) on ``POST /v1/chat:stream``
behaves as on chat — one model call and one stored exchange however often the request is sent."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import LocalStack, start_function
from tests.integration.test_stream_resume import read_events, text_of


@pytest.fixture
def other_instance(stack: LocalStack) -> Iterator[str]:
    url, process = start_function(stack.settings, "stream")
    yield url
    process.terminate()
    process.wait(10)


def parse(lines: list[str]) -> list[dict[str, Any]]:
    """Events from the lines of an event stream."""
    events: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    for line in lines:
        if line == "" and current:
            events.append(current)
            current = {}
        elif line and not line.startswith(":"):
            key, _, value = line.partition(": ")
            current[key] = json.loads(value) if key == "data" else value
    return events


def stream_url(base: str) -> str:
    return f"{base}/v1/chat:stream"


async def conversations(db: Any) -> list[Any]:
    return [c async for c in db.collection("conversations").stream()]


async def test_a_replay_of_a_finished_stream_returns_the_same_events_without_a_model_call(
    stack: LocalStack, firestore_db: Any
) -> None:
    headers = {**stack.auth(), "Idempotency-Key": "finished-1"}
    body = {"message": "count to five"}
    async with httpx.AsyncClient(timeout=30) as client:
        first = await client.post(stream_url(stack.url("stream")), json=body, headers=headers)
        again = await client.post(stream_url(stack.url("stream")), json=body, headers=headers)
    assert first.status_code == again.status_code == 200
    assert first.text.endswith('event: done\ndata: {"finish_reason":"STOP"}\n\n'), first.text[-200:]
    assert again.content == first.content  # the same events, ids included
    assert again.headers["content-type"].startswith("text/event-stream")
    assert stack.model_calls()["calls"] == {"gemini-2.5-flash": {"StreamGenerateContent": 1}}
    assert len(await conversations(firestore_db)) == 1


async def test_a_replay_while_streaming_receives_the_whole_answer_from_the_start(
    stack: LocalStack, firestore_db: Any, other_instance: str
) -> None:
    stack.fault("gemini-2.5-flash", slow_stream_ms=50)
    body = {"message": "a long answer", "request_id": "while-streaming-1"}  # the body's key
    async with httpx.AsyncClient(timeout=30) as client:

        async def replay() -> list[dict[str, Any]]:
            url = stream_url(other_instance)
            async with client.stream("POST", url, json=body, headers=stack.auth()) as again:
                assert again.status_code == 200
                return (await read_events(again))[0]

        url = stream_url(stack.url("stream"))
        replaying = None
        async with client.stream("POST", url, json=body, headers=stack.auth()) as r:
            lines = []
            async for line in r.aiter_lines():
                lines.append(line)
                if replaying is None and sum(x == "event: delta" for x in lines) == 2:
                    replaying = asyncio.create_task(replay())  # the first is mid-answer
        assert replaying is not None
        replayed = await replaying
    first = parse(lines)
    assert [e["id"] for e in replayed] == [e["id"] for e in first]  # from event 1, each once
    assert text_of(replayed) == text_of(first) and text_of(first)
    assert replayed[-1]["event"] == "done"
    assert stack.model_calls()["calls"] == {"gemini-2.5-flash": {"StreamGenerateContent": 1}}
    assert len(await conversations(firestore_db)) == 1


async def test_the_same_key_with_another_body_is_refused(stack: LocalStack) -> None:
    headers = {**stack.auth(), "Idempotency-Key": "reused-1"}
    async with httpx.AsyncClient(timeout=30) as client:
        url = stream_url(stack.url("stream"))
        first = await client.post(url, json={"message": "one"}, headers=headers)
        other = await client.post(url, json={"message": "two"}, headers=headers)
        chat = await client.post(
            f"{stack.url('chat')}/v1/chat", json={"message": "one"}, headers=headers
        )
    assert first.status_code == 200
    assert other.status_code == 422
    assert other.json()["error"]["details"] == [
        {"field": "Idempotency-Key", "issue": "reused with another body"}
    ]
    assert chat.status_code == 422  # a key names one request: this one was a stream
    assert stack.model_calls()["calls"] == {"gemini-2.5-flash": {"StreamGenerateContent": 1}}


async def test_100_concurrent_replays_of_one_key_make_one_model_call(
    stack: LocalStack, firestore_db: Any, other_instance: str
) -> None:
    stack.fault("gemini-2.5-flash", slow_stream_ms=30)
    headers = {**stack.auth(), "Idempotency-Key": "hundred-1"}
    body = {"message": "everyone at once"}
    bases = [stack.url("stream"), other_instance]

    async def ask(n: int) -> list[dict[str, Any]]:
        async with client.stream("POST", stream_url(bases[n % 2]), json=body, headers=headers) as r:
            assert r.status_code == 200, await r.aread()
            events, _ = await read_events(r)
        return events

    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=120)) as client:
        answers = await asyncio.gather(*(ask(n) for n in range(100)))
    assert stack.model_calls()["calls"] == {"gemini-2.5-flash": {"StreamGenerateContent": 1}}
    assert len({tuple(e["id"] for e in events) for events in answers}) == 1  # one stream
    assert len({text_of(events) for events in answers}) == 1
    assert all(events[-1]["event"] == "done" for events in answers)
    assert len(await conversations(firestore_db)) == 1


async def test_a_first_stream_that_fails_before_its_first_token_can_be_retried(
    stack: LocalStack, firestore_db: Any
) -> None:
    """A failure before anything was sent is chat's 503; the record goes with it, so the same
    key runs again once the model is back."""
    headers = {**stack.auth(), "Idempotency-Key": "fails-first"}
    body = {"message": "try me twice"}
    stack.fault("*", error_rate=1.0)
    async with httpx.AsyncClient(timeout=30) as client:
        url = stream_url(stack.url("stream"))
        failed = await client.post(url, json=body, headers=headers)
        assert failed.status_code == 503 and failed.headers["retry-after"]
        stack.clear_faults()
        await asyncio.sleep(1.2)  # the breaker lets a probe through again
        retried = await client.post(url, json=body, headers=headers)
    assert retried.status_code == 200
    assert "event: done" in retried.text
    assert len(await conversations(firestore_db)) == 1


async def test_a_replay_of_an_answered_stream_waits_for_its_recorded_events(
    stack: LocalStack, firestore_db: Any
) -> None:
    """Between storing its answer and recording its events a stream's buffer may already be out
    of reach: a replay then waits for the record rather than refusing the key."""
    from datetime import UTC, datetime, timedelta

    from shared.idempotency import COLLECTION, Idempotency, _doc_id

    settings = stack.client_settings()
    idempotency = Idempotency(firestore_db, settings)
    now = datetime.now(UTC)
    reference = firestore_db.collection(COLLECTION).document(_doc_id("user:alice", "answered-1"))
    await reference.set(
        {
            "state": "answered",
            "owner": "user:alice",
            "body_hash": "h",
            "stream_id": "gone0001",
            "created_at": now,
            "lease_until": now + timedelta(minutes=5),
            "expire_at": now + timedelta(hours=1),
        }
    )

    async def never_start(*_: Any) -> Any:
        raise AssertionError("an answered stream never runs again")

    async def not_buffered(_: str) -> None:
        return None

    async def record_events() -> None:
        await asyncio.sleep(0.3)
        await reference.update({"state": "done", "status": 200, "body": b"event: done\n\n"})

    recording = asyncio.create_task(record_events())
    events = await idempotency.stream(
        "user:alice", "answered-1", "h", "new0001", never_start, not_buffered
    )
    await recording
    assert [chunk async for chunk in events] == [b"event: done\n\n"]
