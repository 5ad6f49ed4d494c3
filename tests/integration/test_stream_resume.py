"""Streams: resume with Last-Event-ID (on any instance), cancellation when abandoned, heartbeats."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import LocalStack, start_function


async def read_events(
    response: httpx.Response, stop_after_deltas: int | None = None
) -> tuple[list[dict[str, Any]], int]:
    """Parsed events (and the number of heartbeat comments) until the stream ends or enough
    deltas arrived."""
    events: list[dict[str, Any]] = []
    heartbeats = 0
    current: dict[str, Any] = {}
    async for line in response.aiter_lines():
        if line.startswith(":"):
            heartbeats += 1
        elif line == "":
            if current:
                events.append(current)
                current = {}
                deltas = sum(e["event"] == "delta" for e in events)
                if stop_after_deltas is not None and deltas >= stop_after_deltas:
                    break
        else:
            key, _, value = line.partition(": ")
            current[key] = json.loads(value) if key == "data" else value
    return events, heartbeats


def text_of(events: list[dict[str, Any]]) -> str:
    return "".join(e["data"]["text"] for e in events if e["event"] == "delta")


def start_stream_instance(stack: LocalStack) -> tuple[str, subprocess.Popen[str]]:
    """Another stream function process on the same backing services, answering."""
    return start_function(stack.settings, "stream")


@pytest.fixture
def second_stream_instance(stack: LocalStack) -> Iterator[str]:
    url, process = start_stream_instance(stack)
    yield url
    process.terminate()
    process.wait(10)


@pytest.mark.parametrize("same_instance", [True, False])
async def test_dropped_stream_resumes_exactly_once_with_one_model_call(
    stack: LocalStack, firestore_db: Any, second_stream_instance: str, same_instance: bool
) -> None:
    stack.fault("gemini-2.5-flash", slow_stream_ms=40)
    url = f"{stack.url('stream')}/v1/chat:stream"
    headers = stack.auth()
    body = {"message": "resume me"}
    async with httpx.AsyncClient(timeout=30) as client:
        async with client.stream("POST", url, json=body, headers=headers) as response:
            assert response.status_code == 200
            before, _ = await read_events(response, stop_after_deltas=2)
        resume_url = url if same_instance else f"{second_stream_instance}/v1/chat:stream"
        resumed_headers = {**headers, "Last-Event-ID": before[-1]["id"]}
        async with client.stream("POST", resume_url, json=body, headers=resumed_headers) as again:
            assert again.status_code == 200
            after, _ = await read_events(again)
    events = before + after
    sid = before[0]["data"]["message_id"]
    assert [e["id"] for e in events] == [f"{sid}:{n}" for n in range(1, len(events) + 1)]
    assert [e["event"] for e in after][-2:] == ["usage", "done"]
    conversation = before[0]["data"]["conversation_id"]
    await asyncio.sleep(0.1)
    stored = (
        await firestore_db.collection("conversations")
        .document(conversation)
        .collection("messages")
        .document(sid)
        .get()
    )
    assert stored.exists and stored.get("text") == text_of(events)
    assert stack.model_calls()["calls"] == {"gemini-2.5-flash": {"StreamGenerateContent": 1}}
    assert stack.model_calls()["cancelled"] == {}


async def test_abandoned_stream_cancels_the_model_call_within_a_second(
    stack: LocalStack, firestore_db: Any
) -> None:
    stack.fault("gemini-2.5-flash", slow_stream_ms=200)
    url = f"{stack.url('stream')}/v1/chat:stream"
    async with httpx.AsyncClient(timeout=30) as client:
        async with client.stream(
            "POST", url, json={"message": "abandon me"}, headers=stack.auth()
        ) as response:
            await read_events(response, stop_after_deltas=1)
        dropped = time.monotonic()
    while not stack.model_calls()["cancelled"] and time.monotonic() - dropped < 2:
        await asyncio.sleep(0.02)
    assert stack.model_calls()["cancelled"] == {"gemini-2.5-flash": {"StreamGenerateContent": 1}}
    assert time.monotonic() - dropped < 1.0
    assert [c async for c in firestore_db.collection("conversations").stream()] == []


async def test_heartbeats_keep_an_idle_stream_alive(stack: LocalStack) -> None:
    stack.fault("gemini-2.5-flash", slow_stream_ms=300)
    async with (
        httpx.AsyncClient(timeout=30) as client,
        client.stream(
            "POST",
            f"{stack.url('stream')}/v1/chat:stream",
            json={"message": "slowly"},
            headers=stack.auth(),
        ) as response,
    ):
        events, heartbeats = await read_events(response)
    assert events[-1]["event"] == "done"
    assert heartbeats >= 3  # heartbeat every 0.2 s in the test stack; 300 ms between chunks


async def test_resume_is_refused_for_others_and_bad_ids(stack: LocalStack) -> None:
    url = f"{stack.url('stream')}/v1/chat:stream"
    async with httpx.AsyncClient(timeout=30) as client:
        async with client.stream(
            "POST", url, json={"message": "mine"}, headers=stack.auth("alice")
        ) as response:
            events, _ = await read_events(response)
        last = events[1]["id"]
        bob = await client.post(url, headers={**stack.auth("bob"), "Last-Event-ID": last})
        assert bob.status_code == 404
        bad = await client.post(url, headers={**stack.auth(), "Last-Event-ID": "x:y:z"})
        assert bad.status_code == 422
        unknown = await client.post(url, headers={**stack.auth(), "Last-Event-ID": "nosuch:3"})
        assert unknown.status_code == 404
        done = await client.post(url, headers={**stack.auth("alice"), "Last-Event-ID": last})
        assert done.status_code == 200
        resumed = [line for line in done.text.splitlines() if line.startswith("event: ")]
        assert resumed[-1] == "event: done"


async def test_a_stream_waiting_on_a_slow_first_token_can_be_resumed(stack: LocalStack) -> None:
    """The producer stays visibly alive while the model thinks: a client that drops late in a
    long wait for the first token and reconnects at once gets the whole answer, one model call."""
    stack.fault("gemini-2.5-flash", latency_ms=4500)  # longer than a live mark lasts
    url = f"{stack.url('stream')}/v1/chat:stream"
    headers = stack.auth()
    started = time.monotonic()
    async with httpx.AsyncClient(timeout=30) as client:
        async with client.stream("POST", url, json={"message": "think"}, headers=headers) as r:
            meta = None
            async for line in r.aiter_lines():
                if line.startswith("id: "):
                    meta = line[4:]
                if meta and time.monotonic() - started > 3.2:  # heartbeats keep lines coming
                    break
        assert meta is not None
        resumed = {**headers, "Last-Event-ID": meta}
        async with client.stream("POST", url, json={"message": "think"}, headers=resumed) as r:
            after, _ = await read_events(r)
    assert [e["event"] for e in after][-2:] == ["usage", "done"], after
    assert text_of(after)
    assert stack.model_calls()["calls"] == {"gemini-2.5-flash": {"StreamGenerateContent": 1}}


async def test_a_buffer_with_a_lost_write_is_never_resumed_with_a_gap(stack: LocalStack) -> None:
    """Should a buffer write have been lost (Redis failed mid-stream), a resumer is told the
    stream was cut rather than handed an answer with a piece missing."""
    import redis.asyncio

    from shared.contracts import DeltaEvent, DoneEvent
    from shared.sse import frame

    sid, buffer = "gappy0001", "ngx:sse:gappy0001"
    client = redis.asyncio.Redis.from_url(stack.redis_url)
    await client.set(f"{buffer}:owner", "user:alice", ex=60)
    events = [
        (2, "delta", DeltaEvent(text="one")),
        (4, "delta", DeltaEvent(text="three")),  # seq 3 never reached the buffer
        (5, "done", DoneEvent(finish_reason="STOP")),
    ]
    for seq, name, data in events:
        payload = frame(name, data, f"{sid}:{seq}")
        await client.xadd(buffer, {"seq": seq, "event": name, "frame": payload})
    await client.aclose()
    headers = {**stack.auth("alice"), "Last-Event-ID": f"{sid}:1"}
    async with (
        httpx.AsyncClient(timeout=30) as http,
        http.stream("POST", f"{stack.url('stream')}/v1/chat:stream", headers=headers) as r,
    ):
        after, _ = await read_events(r)
    assert [e["event"] for e in after] == ["delta", "error"]
    assert after[0]["data"]["text"] == "one"
    assert "interrupted" in after[1]["data"]["error"]["message"]


async def test_a_stream_whose_process_died_is_reported_cut_to_resumers(stack: LocalStack) -> None:
    """No heartbeat comments forever: once the producing process is gone, a resumer on another
    instance is told the stream was interrupted, within the heartbeat key's lifetime."""
    stack.fault("gemini-2.5-flash", slow_stream_ms=300)
    url, process = start_stream_instance(stack)
    headers = stack.auth()
    try:
        async with httpx.AsyncClient(timeout=30) as client:
            async with client.stream(
                "POST", f"{url}/v1/chat:stream", json={"message": "die"}, headers=headers
            ) as response:
                before, _ = await read_events(response, stop_after_deltas=1)
                os.killpg(process.pid, signal.SIGKILL)  # the instance dies mid-stream
            resumed = {**headers, "Last-Event-ID": before[-1]["id"]}
            started = time.monotonic()
            async with client.stream(
                "POST", f"{stack.url('stream')}/v1/chat:stream", headers=resumed
            ) as again:
                after, _ = await read_events(again)
            waited = time.monotonic() - started
    finally:
        process.wait(10)
    assert after[-1]["event"] == "error", after
    assert "interrupted" in after[-1]["data"]["error"]["message"]
    assert waited < 6.0


async def test_an_idle_process_writes_no_heartbeat(stack: LocalStack) -> None:
    import redis.asyncio

    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.post(
            f"{stack.url('stream')}/v1/chat:stream", json={"message": "hi"}, headers=stack.auth()
        )
    assert response.status_code == 200
    r = redis.asyncio.Redis.from_url(stack.redis_url)
    assert [k async for k in r.scan_iter(match="ngx:sse:process:*")]  # beating while it streamed
    deadline = time.monotonic() + 6  # the last renewal (≤ 1 s) plus the key's 3 s
    while [k async for k in r.scan_iter(match="ngx:sse:process:*")]:
        assert time.monotonic() < deadline, "the heartbeat outlived the process's last stream"
        await asyncio.sleep(0.2)
    await r.aclose()


async def test_a_follower_reads_the_last_events_written_as_the_stream_ended(
    stack: LocalStack,
) -> None:
    """The producer may write its last events and end between a follower's read and its check
    that the stream is still produced: the follower still gets them, not an interruption."""
    import redis.asyncio

    from shared.contracts import DeltaEvent, DoneEvent
    from shared.memorystore import Memorystore
    from shared.sse import frame
    from shared.streams import StreamHub

    sid, buffer = "ending0001", "ngx:sse:ending0001"
    client = redis.asyncio.Redis.from_url(stack.redis_url)
    await client.delete(buffer)
    first = frame("delta", DeltaEvent(text="one"), f"{sid}:1")
    await client.xadd(buffer, {"seq": 1, "event": "delta", "frame": first})
    store = Memorystore(stack.client_settings())
    hub = StreamHub(store, stack.client_settings())

    async def ended_just_now(_: str) -> bool:
        """The last entry lands and the live key goes, as the producer's finish does."""
        last = frame("done", DoneEvent(finish_reason="STOP"), f"{sid}:2")
        await client.xadd(buffer, {"seq": 2, "event": "done", "frame": last})
        return False

    hub._live = ended_just_now  # type: ignore[method-assign,assignment]
    frames = [f async for f in hub._follow(sid, 0)]
    await store.close()
    await client.aclose()
    assert [f.split(b"\n")[1] for f in frames] == [b"event: delta", b"event: done"]


class _LiveCheckTimesOut:
    """A Redis client whose GET of a stream's live key times out ``times`` times (Memorystore
    slow for a moment), everything else passing through."""

    def __init__(self, client: Any, times: int) -> None:
        self._client = client
        self.left = times

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    async def get(self, key: str) -> Any:
        if key.endswith(":live") and self.left > 0:
            self.left -= 1
            raise TimeoutError("slow memorystore")
        return await self._client.get(key)


async def test_a_follower_rides_out_a_live_check_that_times_out(private_redis: Any) -> None:
    """A follower that cannot tell whether the producer lives (Memorystore did not answer in
    time) waits, as for any brief outage, instead of calling a running stream interrupted."""
    from shared.contracts import DeltaEvent, DoneEvent
    from shared.memorystore import Memorystore
    from shared.settings import load_settings
    from shared.sse import frame
    from shared.streams import StreamHub

    settings = load_settings(redis_url=private_redis.url, redis_backoff_s=0.5)
    store = Memorystore(settings)
    hub = StreamHub(store, settings)
    real = store._client_for
    flaky = _LiveCheckTimesOut(real(1.0), times=1)  # the client of the follower's checks
    store._client_for = lambda timeout: flaky if timeout == 1.0 else real(timeout)  # type: ignore[method-assign]
    sid, buffer = "flaky0001", "ngx:sse:flaky0001"
    raw = store.redis
    await raw.set(f"{buffer}:owner", "user:alice", ex=60)
    await raw.set(f"{buffer}:live", "proc1", ex=60)
    await raw.set("ngx:sse:process:proc1", 1, ex=60)
    first = frame("delta", DeltaEvent(text="one"), f"{sid}:1")
    await raw.xadd(buffer, {"seq": 1, "event": "delta", "frame": first})

    async def finish_later() -> None:
        await asyncio.sleep(1.5)  # after the follower's empty read and failed live check
        last = frame("done", DoneEvent(finish_reason="STOP"), f"{sid}:2")
        await raw.xadd(buffer, {"seq": 2, "event": "done", "frame": last})

    producer = asyncio.create_task(finish_later())
    body = await hub.resume(f"{sid}:0", "user:alice")
    frames = [chunk async for chunk in body if not chunk.startswith(b":")]
    await producer
    await store.close()
    assert flaky.left == 0  # the live check did time out
    assert [f.split(b"\n")[1] for f in frames] == [b"event: delta", b"event: done"]
