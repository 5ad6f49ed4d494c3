"""WebSocket sessions at /v1/sessions: authentication, answers as events, cancel, resume, limits."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from shared.auth.apikeys import ApiKeyStore
from tests.conftest import LocalStack, start_function
from tests.integration.session_client import (
    close_code,
    open_session,
    receive,
    send,
    sessions_url,
    text_of,
    until,
)
from tests.integration.test_stream_resume import read_events


async def test_a_session_answers_like_the_stream_and_stores_the_exchange(
    stack: LocalStack, firestore_db: Any
) -> None:
    async with open_session(stack.url("stream"), stack.token()) as ws:
        assert ws.subprotocol == "ngx.v1"  # the credential offered beside it is never echoed
        ready = await receive(ws)
        assert ready["type"] == "ready"
        assert ready["data"]["max_streams"] >= 1
        await send(ws, {"type": "chat", "ref": "q1", "request": {"message": "hello there"}})
        events = await until(ws, "done")
    names = [e["type"] for e in events]
    assert names[0] == "meta" and names[-2:] == ["usage", "done"]
    sid = events[0]["data"]["message_id"]
    assert [e["id"] for e in events] == [f"{sid}:{n}" for n in range(1, len(events) + 1)]
    assert {e["stream_id"] for e in events} == {sid} and {e["ref"] for e in events} == {"q1"}
    conversation = events[0]["data"]["conversation_id"]
    await asyncio.sleep(0.2)
    stored = (
        await firestore_db.collection("conversations")
        .document(conversation)
        .collection("messages")
        .document(sid)
        .get()
    )
    assert stored.exists and stored.get("text") == text_of(events)


async def api_key(firestore_db: Any, *scopes: str) -> str:
    """A new API key (default scopes unless ``scopes``)."""
    store = ApiKeyStore(firestore_db)
    plaintext, _ = await (store.create("app", scopes=scopes) if scopes else store.create("app"))
    return plaintext


async def test_auth_in_the_first_message_with_an_api_key(
    stack: LocalStack, firestore_db: Any
) -> None:
    key = await api_key(firestore_db)
    async with open_session(stack.url("stream")) as ws:
        await send(ws, {"type": "auth", "api_key": key, "ref": "a"})
        ready = await receive(ws)
        assert ready["type"] == "ready" and ready["ref"] == "a"
        await send(ws, {"type": "ping", "ref": "p"})
        assert await receive(ws) == {"type": "pong", "ref": "p", "data": {}}


@pytest.mark.parametrize(
    "first",
    [
        {"type": "chat", "request": {"message": "before auth"}},
        {"type": "auth", "token": "not-a-token"},
        {"type": "auth", "api_key": "ngx_nosuchkey"},
        {"type": "auth"},
        "not json",
    ],
)
async def test_without_a_valid_credential_the_session_closes_4401(
    stack: LocalStack, first: Any
) -> None:
    async with open_session(stack.url("stream")) as ws:
        await ws.send(first if isinstance(first, str) else json.dumps(first))
        error = await receive(ws)
        assert error["type"] == "error"
        assert error["data"]["error"]["code"] in (
            "unauthenticated",
            "validation_failed",
            "invalid_json",
        )
        assert await close_code(ws) == 4401
    assert stack.model_calls()["calls"] == {}


async def test_a_token_in_the_query_string_is_ignored(stack: LocalStack) -> None:
    url = f"{sessions_url(stack.url('stream'))}?access_token={stack.token()}"
    async with connect(url, subprotocols=["ngx.v1"]) as ws:  # type: ignore[list-item]
        await send(ws, {"type": "ping"})
        error = await receive(ws)
        assert error["data"]["error"]["code"] == "unauthenticated"
        assert await close_code(ws) == 4401


async def test_a_credential_without_the_chat_scope_closes_4403(
    stack: LocalStack, firestore_db: Any
) -> None:
    key = await api_key(firestore_db, "conversations")
    async with connect(
        sessions_url(stack.url("stream")),
        subprotocols=["ngx.v1", f"ngx.key.{key}"],  # type: ignore[list-item]
    ) as ws:
        error = await receive(ws)
        assert error["data"]["error"]["code"] == "permission_denied"
        assert await close_code(ws) == 4403


async def test_a_page_of_another_origin_is_refused_at_the_handshake(stack: LocalStack) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with connect(
            sessions_url(stack.url("stream")),
            subprotocols=["ngx.v1"],  # type: ignore[list-item]
            origin="https://evil.example",  # type: ignore[arg-type]
        ):
            pass
    assert refused.value.response.status_code == 403


async def test_a_plain_http_request_to_the_session_path_gets_426(stack: LocalStack) -> None:
    response = httpx.get(f"{stack.url('stream')}/v1/sessions", headers=stack.auth(), timeout=5)
    assert response.status_code == 426
    assert response.json()["error"]["code"] == "upgrade_required"


HOSTILE = [
    ("not json at all", "invalid_json"),
    ('{"type": "dance"}', "validation_failed"),
    ('{"type": "chat"}', "validation_failed"),
    ('{"type": "chat", "request": {"message": "x", "tier": "huge"}}', "validation_failed"),
    ('{"type": "chat", "request": {"message": "\\ud800"}}', "validation_failed"),
    ('{"type": "chat", "request": {"message": "\\u0000"}}', "validation_failed"),
    ('{"type": "ping", "ref": "__reserved__"}', "validation_failed"),
    ('{"type": "ping", "ref": "a/../b"}', "validation_failed"),
    ('{"type": "resume", "last_event_id": "x:y:z"}', "validation_failed"),
    ('{"type": "resume", "last_event_id": "nosuch:3"}', "not_found"),
    ('{"type": "cancel", "stream_id": "nothing-running"}', "not_found"),
    (
        '{"type": "chat", "request": {"message": "x", "max_output_tokens": 1e400}}',
        "validation_failed",
    ),
    ("[" * 100_000 + "]" * 100_000, "payload_too_large"),
    ("[" * 5_000 + "]" * 5_000, "invalid_json"),
    ('{"type": "chat", "request": {"message": "' + "x" * 70_000 + '"}}', "payload_too_large"),
]


async def test_bad_messages_get_error_events_and_the_session_goes_on(stack: LocalStack) -> None:
    async with open_session(stack.url("stream"), stack.token()) as ws:
        await receive(ws)  # ready
        for text, code in HOSTILE:
            await ws.send(text)
            error = await receive(ws)
            assert error["type"] == "error", text[:80]
            assert error["data"]["error"]["code"] == code, (text[:80], error)
        await ws.send(b"\x00\x01 binary")
        assert (await receive(ws))["data"]["error"]["code"] == "unsupported_media_type"
        await send(ws, {"type": "ping", "ref": "still"})
        assert (await receive(ws))["type"] == "pong"
    assert stack.model_calls()["calls"] == {}


async def test_another_users_conversation_is_not_found_on_a_session(stack: LocalStack) -> None:
    async with open_session(stack.url("stream"), stack.token("alice")) as ws:
        await receive(ws)
        await send(ws, {"type": "chat", "request": {"message": "mine"}})
        alice = await until(ws, "done")
    conversation = alice[0]["data"]["conversation_id"]
    async with open_session(stack.url("stream"), stack.token("bob")) as ws:
        await receive(ws)
        await send(
            ws, {"type": "chat", "request": {"message": "x", "conversation_id": conversation}}
        )
        error = await receive(ws)
        assert error["data"]["error"]["code"] == "not_found"
        await send(ws, {"type": "resume", "last_event_id": alice[1]["id"]})
        assert (await receive(ws))["data"]["error"]["code"] == "not_found"


async def test_a_frame_over_the_protocol_limit_closes_1009(stack: LocalStack) -> None:
    async with open_session(stack.url("stream"), stack.token()) as ws:
        await receive(ws)
        await ws.send("x" * (1024 * 1024 + 1))
        assert await close_code(ws) == 1009
    assert httpx.get(f"{stack.url('stream')}/healthz", timeout=5).status_code == 200


async def test_cancel_stops_the_model_call_within_a_second(stack: LocalStack) -> None:
    stack.fault("gemini-2.5-flash", slow_stream_ms=200)
    async with open_session(stack.url("stream"), stack.token()) as ws:
        await receive(ws)
        await send(ws, {"type": "chat", "ref": "c", "request": {"message": "a long answer"}})
        first = await until(ws, "delta")
        sid = first[0]["stream_id"]
        await send(ws, {"type": "cancel", "stream_id": sid, "ref": "stop"})
        sent = time.monotonic()
        after = await until(ws, "cancelled")
        assert after[-1] == {
            "type": "cancelled",
            "stream_id": sid,
            "ref": "stop",
            "data": {"stream_id": sid},
        }
        while not stack.model_calls()["cancelled"] and time.monotonic() - sent < 2:
            await asyncio.sleep(0.02)
        assert stack.model_calls()["cancelled"] == {
            "gemini-2.5-flash": {"StreamGenerateContent": 1}
        }
        assert time.monotonic() - sent < 1.0
        await send(ws, {"type": "ping"})  # the session carries on
        assert (await receive(ws))["type"] == "pong"


async def test_cancel_before_the_first_token_stops_the_model_call(stack: LocalStack) -> None:
    stack.fault("gemini-2.5-flash", latency_ms=3000)
    async with open_session(stack.url("stream"), stack.token()) as ws:
        await receive(ws)
        await send(ws, {"type": "chat", "request": {"message": "think first"}})
        await asyncio.sleep(0.3)
        await send(ws, {"type": "cancel"})
        sent = time.monotonic()
        cancelled = await until(ws, "cancelled")
        assert [e["type"] for e in cancelled] == ["cancelled"]
        while not stack.model_calls()["cancelled"] and time.monotonic() - sent < 2:
            await asyncio.sleep(0.02)
        assert time.monotonic() - sent < 1.0
        assert sum(stack.model_calls()["cancelled"]["gemini-2.5-flash"].values()) == 1


@pytest.fixture
def second_stream(stack: LocalStack) -> Iterator[str]:
    url, process = start_function(stack.settings, "stream")
    yield url
    process.terminate()
    process.wait(10)


@pytest.mark.parametrize("elsewhere", [False, True])
async def test_a_dropped_session_resumes_exactly_once_with_one_model_call(
    stack: LocalStack, second_stream: str, elsewhere: bool
) -> None:
    stack.fault("gemini-2.5-flash", slow_stream_ms=40)
    async with open_session(stack.url("stream"), stack.token()) as ws:
        await receive(ws)
        await send(ws, {"type": "chat", "request": {"message": "resume me please"}})
        before = await until(ws, "delta")
        before += [await receive(ws)]
    again = second_stream if elsewhere else stack.url("stream")
    async with open_session(again, stack.token()) as ws:
        await receive(ws)
        await send(ws, {"type": "resume", "last_event_id": before[-1]["id"], "ref": "r"})
        after = await until(ws, "done")
    events = before + after
    sid = before[0]["stream_id"]
    assert [e["id"] for e in events] == [f"{sid}:{n}" for n in range(1, len(events) + 1)]
    assert text_of(events).strip()
    assert stack.model_calls()["calls"] == {"gemini-2.5-flash": {"StreamGenerateContent": 1}}
    assert stack.model_calls()["cancelled"] == {}


async def test_an_sse_stream_resumes_on_a_session(stack: LocalStack) -> None:
    stack.fault("gemini-2.5-flash", slow_stream_ms=40)
    async with (
        httpx.AsyncClient(timeout=30) as client,
        client.stream(
            "POST",
            f"{stack.url('stream')}/v1/chat:stream",
            json={"message": "from sse to ws"},
            headers=stack.auth(),
        ) as response,
    ):
        before, _ = await read_events(response, stop_after_deltas=2)
    async with open_session(stack.url("stream"), stack.token()) as ws:
        await receive(ws)
        await send(ws, {"type": "resume", "last_event_id": before[-1]["id"]})
        after = await until(ws, "done")
    assert [e["type"] for e in after][-2:] == ["usage", "done"]
    assert stack.model_calls()["calls"] == {"gemini-2.5-flash": {"StreamGenerateContent": 1}}


async def test_the_same_request_id_twice_replays_one_answer(stack: LocalStack) -> None:
    message = {"type": "chat", "request": {"message": "once only", "request_id": "req-ws-1"}}
    async with open_session(stack.url("stream"), stack.token()) as ws:
        await receive(ws)
        await send(ws, message)
        first = await until(ws, "done")
        await send(ws, message)
        second = await until(ws, "done")
    assert [e["id"] for e in first] == [e["id"] for e in second]
    assert text_of(first) == text_of(second)
    assert stack.model_calls()["calls"] == {"gemini-2.5-flash": {"StreamGenerateContent": 1}}


async def test_tool_events_arrive_on_a_session(stack: LocalStack) -> None:
    async with open_session(stack.url("stream"), stack.token()) as ws:
        await receive(ws)
        await send(
            ws, {"type": "chat", "request": {"message": "What is the status of order A-1001?"}}
        )
        events = await until(ws, "done")
    names = [e["type"] for e in events]
    assert "tool_call" in names and "tool_result" in names
    assert names.index("tool_call") < names.index("tool_result") < names.index("delta")
    assert [r["data"]["status"] for r in events if r["type"] == "tool_result"] == ["ok"]


async def test_answers_run_side_by_side_up_to_the_session_bound(stack: LocalStack) -> None:
    stack.fault("gemini-2.5-flash", slow_stream_ms=50)
    async with open_session(stack.url("stream"), stack.token()) as ws:
        ready = await receive(ws)
        bound = ready["data"]["max_streams"]
        for n in range(bound + 1):
            await send(ws, {"type": "chat", "ref": f"q{n}", "request": {"message": f"q {n}"}})
        done: set[str] = set()
        refused: list[dict[str, Any]] = []
        while len(done) < bound:
            item = await receive(ws)
            if item["type"] == "done":
                done.add(item["ref"])
            elif item["type"] == "error":
                refused.append(item)
    assert done == {f"q{n}" for n in range(bound)}
    assert [(e["ref"], e["data"]["error"]["code"]) for e in refused] == [(f"q{bound}", "conflict")]


@pytest.fixture
def strict_stream(stack: LocalStack) -> Iterator[str]:
    """A stream instance with short session limits (the send queue's bound is a unit test's:
    tests/unit/test_session_bounds.py)."""
    url, process = start_function(
        stack.settings,
        "stream",
        NGX_SESSION_IDLE_S="1.0",
        NGX_SESSION_MAX_S="1.5",
        NGX_SESSION_DRAIN_S="0.5",
        NGX_SESSION_AUTH_TIMEOUT_S="0.5",
    )
    yield url
    process.terminate()
    process.wait(10)


async def test_idle_and_unauthenticated_sessions_are_closed(
    stack: LocalStack, strict_stream: str
) -> None:
    async with open_session(strict_stream) as ws:
        assert (await receive(ws))["data"]["error"]["code"] == "unauthenticated"
        assert await close_code(ws) == 4401
    started = time.monotonic()  # before the server's idle clock starts, whatever the load
    async with open_session(strict_stream, stack.token()) as ws:
        await receive(ws)
        assert await close_code(ws) == 4002
        assert 1.0 <= time.monotonic() - started < 3.0


async def test_a_session_is_asked_to_reconnect_and_its_answer_resumes_elsewhere(
    stack: LocalStack, strict_stream: str
) -> None:
    """Before the time limit the server sends ``reconnect`` naming the running answer, refuses
    new chats, lets the answer drain briefly, closes 4000; a new session resumes the answer."""
    stack.fault("gemini-2.5-flash", slow_stream_ms=150)
    async with open_session(strict_stream, stack.token()) as ws:
        await receive(ws)
        await asyncio.sleep(0.5)
        await send(ws, {"type": "ping"})
        await send(ws, {"type": "chat", "request": {"message": "a long one before the limit"}})
        events = await until(ws, "reconnect", timeout=5)
        hint = events[-1]["data"]
        received = [e for e in events if e["type"] not in ("pong", "reconnect")]
        assert hint["drain_s"] == 0.5 and hint["last_event_ids"] == [received[-1]["id"]]
        await send(ws, {"type": "chat", "request": {"message": "too late"}})
        while True:
            item = await receive(ws)
            if item["type"] == "error":
                assert item["data"]["error"]["code"] == "unavailable"
                break
            received.append(item)
        assert await close_code(ws) == 4000
    async with open_session(stack.url("stream"), stack.token()) as ws:
        await receive(ws)
        await send(ws, {"type": "resume", "last_event_id": received[-1]["id"]})
        received += await until(ws, "done")
    sid = received[0]["stream_id"]
    assert [e["id"] for e in received] == [f"{sid}:{n}" for n in range(1, len(received) + 1)]
    assert stack.model_calls()["calls"] == {"gemini-2.5-flash": {"StreamGenerateContent": 1}}


async def test_many_answers_one_after_another_on_one_session(stack: LocalStack) -> None:
    """Each answer keeps its own place on the session however quickly the next one starts."""
    async with open_session(stack.url("stream"), stack.token()) as ws:
        await receive(ws)
        for n in range(40):
            await send(ws, {"type": "chat", "ref": f"n{n}", "request": {"message": f"q {n}"}})
            events = await until(ws, "done", "error")
            assert events[-1]["type"] == "done", events[-1]
            assert {e["ref"] for e in events} == {f"n{n}"}


def test_the_readme_session_command_streams_an_answer_with_its_tool_call(
    stack: LocalStack,
) -> None:
    import subprocess
    import sys

    from emulator.stack import EXAMPLE_MESSAGE, ROOT

    command = ["--url", sessions_url(stack.url("stream")), "--token", stack.token()]
    done = subprocess.run(
        [sys.executable, "-m", "emulator.session", *command, EXAMPLE_MESSAGE],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("[tool_call order_status")
    assert lines[1].startswith("[tool_result order_status: ok")
    assert "A-1234" in done.stdout and lines[-1].startswith("[usage ")
