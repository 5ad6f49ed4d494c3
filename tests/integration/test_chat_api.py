"""`POST /v1/chat` and `POST /v1/chat:stream` on their functions-framework processes, end to end."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from shared.contracts import ChatResponse
from tests.conftest import LocalStack

JSON = {"Content-Type": "application/json"}


def parse_sse(body: str) -> list[dict[str, Any]]:
    """Events of a text/event-stream body as dicts with id, event and parsed data."""
    events = []
    for block in body.strip().split("\n\n"):
        fields: dict[str, Any] = {}
        for line in block.splitlines():
            if line.startswith(":"):
                continue
            key, _, value = line.partition(": ")
            fields[key] = json.loads(value) if key == "data" else value
        if fields:
            events.append(fields)
    return events


async def stored(db: Any) -> dict[str, list[dict[str, Any]]]:
    """Every conversation with its messages, as plain dicts."""
    result: dict[str, list[dict[str, Any]]] = {}
    async for conversation in db.collection("conversations").stream():
        messages = conversation.reference.collection("messages").order_by("created_at")
        result[conversation.id] = [m.to_dict() | {"id": m.id} async for m in messages.stream()]
    return result


async def test_chat_answers_in_contract_shape_and_stores_the_exchange(
    stack: LocalStack, firestore_db: Any
) -> None:
    response = httpx.post(
        f"{stack.url('chat')}/v1/chat",
        json={"message": "Hello there"},
        headers={"X-Request-Id": "req-123", **stack.auth()},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    answer = ChatResponse.model_validate(response.json())
    assert answer.request_id == response.headers["X-Request-Id"] == "req-123"
    assert answer.usage.model == "gemini-2.5-flash"
    assert answer.usage.output_tokens == len(answer.text.split())
    assert answer.usage.cached is False
    assert stack.model_calls()["total"] == 1
    conversations = await stored(firestore_db)
    assert list(conversations) == [answer.conversation_id]
    user, model = conversations[answer.conversation_id]
    assert (user["role"], user["text"]) == ("user", "Hello there")
    assert (model["role"], model["text"], model["id"]) == ("model", answer.text, answer.message_id)
    header = (
        await firestore_db.collection("conversations").document(answer.conversation_id).get()
    ).to_dict()
    assert header["owner"] == "user:alice"
    assert header["message_count"] == 2
    assert header["title"] == "Hello there"


async def test_follow_up_sends_history_to_the_model(stack: LocalStack, firestore_db: Any) -> None:
    url = f"{stack.url('chat')}/v1/chat"
    first = httpx.post(
        url, json={"message": "echo: alpha beta"}, headers=stack.auth(), timeout=30
    ).json()
    second = httpx.post(
        url,
        json={"message": "echo: gamma", "conversation_id": first["conversation_id"]},
        headers=stack.auth(),
        timeout=30,
    ).json()
    assert second["conversation_id"] == first["conversation_id"]
    assert second["text"] == "gamma"
    # The second prompt adds the first answer (2 words) and the new message (2 words) to the first.
    assert second["usage"]["input_tokens"] == first["usage"]["input_tokens"] + 4
    assert len((await stored(firestore_db))[first["conversation_id"]]) == 4


async def test_unknown_conversation_is_404(stack: LocalStack, firestore_db: Any) -> None:
    response = httpx.post(
        f"{stack.url('chat')}/v1/chat",
        json={"message": "hi", "conversation_id": "doesnotexist"},
        headers=stack.auth(),
        timeout=30,
    )
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert await stored(firestore_db) == {}
    assert stack.model_calls()["total"] == 0


BAD_INPUTS = [
    pytest.param(b'{"message": ', JSON, 400, "invalid_json", None, id="invalid-json"),
    pytest.param(b"{}", JSON, 422, "validation_failed", "message", id="missing-message"),
    pytest.param(
        b'{"message": "   "}', JSON, 422, "validation_failed", "message", id="empty-message"
    ),
    pytest.param(b'{"message": 5}', JSON, 422, "validation_failed", "message", id="wrong-type"),
    pytest.param(
        b'{"message": "hi", "extra": 1}',
        JSON,
        422,
        "validation_failed",
        "extra",
        id="unknown-field",
    ),
    pytest.param(b"[1, 2]", JSON, 422, "validation_failed", "body", id="not-an-object"),
    pytest.param(
        json.dumps({"message": "x" * 16_001}).encode(),
        JSON,
        413,
        "payload_too_large",
        None,
        id="message-over-limit",
    ),
    pytest.param(b"x" * 70_000, JSON, 413, "payload_too_large", None, id="body-over-limit"),
    pytest.param(
        b'{"message": "hi"}',
        {"Content-Type": "text/plain"},
        415,
        "unsupported_media_type",
        None,
        id="text-plain",
    ),
    pytest.param(
        b'{"message": "hi"}', {}, 415, "unsupported_media_type", None, id="no-content-type"
    ),
]


@pytest.mark.parametrize("function,path", [("chat", "/v1/chat"), ("stream", "/v1/chat:stream")])
@pytest.mark.parametrize("body,headers,status,code,field", BAD_INPUTS)
async def test_bad_input_is_rejected_in_the_envelope_and_nothing_is_written(
    stack: LocalStack,
    firestore_db: Any,
    function: str,
    path: str,
    body: bytes,
    headers: dict[str, str],
    status: int,
    code: str,
    field: str | None,
) -> None:
    response = httpx.post(
        f"{stack.url(function)}{path}",
        content=body,
        headers={**headers, **stack.auth()},
        timeout=30,
    )
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert error["code"] == code
    assert error["request_id"] == response.headers["X-Request-Id"]
    if field is not None:
        assert field in error["message"]
        assert field in {d["field"] for d in error["details"]}
    assert await stored(firestore_db) == {}
    assert stack.model_calls()["total"] == 0


@pytest.mark.parametrize(
    "method,path,status",
    [
        ("GET", "/v1/chat", 405),
        ("GET", "/v2/x", 404),
        ("GET", "/v1/conversations/%0Aabc", 404),  # a decoded line break still reaches us
        ("DELETE", "/%0A%0D", 404),
    ],
)
def test_unknown_route_and_method(stack: LocalStack, method: str, path: str, status: int) -> None:
    response = httpx.request(method, f"{stack.url('chat')}{path}", headers=stack.auth(), timeout=10)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"]["request_id"] == response.headers["X-Request-Id"]


async def test_stream_sends_events_and_stores_as_chat_does(
    stack: LocalStack, firestore_db: Any
) -> None:
    with httpx.stream(
        "POST",
        f"{stack.url('stream')}/v1/chat:stream",
        json={"message": "Stream me"},
        headers=stack.auth(),
        timeout=30,
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        body = response.read().decode()
    events = parse_sse(body)
    names = [e["event"] for e in events]
    assert names[0] == "meta" and names[-2:] == ["usage", "done"]
    assert set(names[1:-2]) == {"delta"} and len(names) > 4
    meta = events[0]["data"]
    sid = meta["message_id"]
    assert [e["id"] for e in events] == [f"{sid}:{n}" for n in range(1, len(events) + 1)]
    text = "".join(e["data"]["text"] for e in events if e["event"] == "delta")
    assert events[-2]["data"]["output_tokens"] == len(text.split())
    conversations = await stored(firestore_db)
    _, model = conversations[meta["conversation_id"]]
    assert model["id"] == meta["message_id"]
    assert model["text"] == text
    # Same answer and same stored shape as the chat function gives for the same request.
    chat = httpx.post(
        f"{stack.url('chat')}/v1/chat",
        json={"message": "Stream me"},
        headers=stack.auth(),
        timeout=30,
    ).json()
    assert chat["text"] == text
    chat_model = (await stored(firestore_db))[chat["conversation_id"]][1]
    assert set(chat_model) == set(model)
    # The streamed answer was cached when complete: the same question on chat is a hit.
    assert chat["usage"]["cached"] is True
    assert stack.model_calls()["calls"] == {"gemini-2.5-flash": {"StreamGenerateContent": 1}}


def test_a_stream_whose_model_fails_before_answering_is_a_plain_http_error(
    stack: LocalStack,
) -> None:
    """Found by a security review: the stream answered 200 + meta + an error event where chat
    answered 503 with Retry-After."""
    stack.fault("*", error_rate=1.0, status="UNAVAILABLE")
    chat = httpx.post(
        f"{stack.url('chat')}/v1/chat", json={"message": "down?"}, headers=stack.auth(), timeout=60
    )
    stream = httpx.post(
        f"{stack.url('stream')}/v1/chat:stream",
        json={"message": "down?"},
        headers=stack.auth(),
        timeout=60,
    )
    assert stream.status_code == chat.status_code == 503
    assert stream.headers["retry-after"] and chat.headers["retry-after"]
    assert stream.headers["content-type"].startswith("application/json")
    assert stream.json()["error"]["code"] == chat.json()["error"]["code"] == "model_unavailable"


def test_a_stream_that_breaks_after_its_first_text_says_when_to_retry(stack: LocalStack) -> None:
    stack.fault("gemini-2.5-flash", fail_after_chunks=2, status="INTERNAL")
    with httpx.stream(
        "POST",
        f"{stack.url('stream')}/v1/chat:stream",
        json={"message": "break midway"},
        headers=stack.auth(),
        timeout=30,
    ) as response:
        assert response.status_code == 200
        body = response.read().decode()
    events = parse_sse(body)
    assert [e["event"] for e in events][:2] == ["meta", "delta"]
    assert events[-1]["event"] == "error"
    error_frame = body.rstrip("\n").rsplit("\n\n", 1)[-1]  # the last event, whole
    assert error_frame.startswith("retry: 1000\nid: ") and "\nevent: error\n" in error_frame
