"""The agent on the local stack: the demo order API as an http tool, on chat and stream, with
scopes deciding which tools a caller is offered."""

from __future__ import annotations

import json
from typing import Any

import httpx

from emulator.demo_api import order
from tests.conftest import LocalStack

QUESTION = "What is the status of order A-1234?"


def sse_events(body: str) -> list[tuple[str, Any]]:
    """(event, data) pairs of an SSE body."""
    found = []
    for block in body.replace("\r\n", "\n").split("\n\n"):
        name, data = "message", []
        for line in block.split("\n"):
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].strip())
        if data:
            found.append((name, json.loads("\n".join(data))))
    return found


def test_chat_calls_the_demo_tool_and_answers_with_its_result(stack: LocalStack) -> None:
    response = httpx.post(
        f"{stack.url('chat')}/v1/chat",
        json={"message": QUESTION},
        headers=stack.auth(),
        timeout=30,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    expected = order("A-1234")
    [call] = body["tool_calls"]
    assert call["name"] == "order_status"
    assert call["arguments"] == {"order_id": "A-1234"}
    assert call["status"] == "ok"
    assert call["latency_ms"] > 0
    assert expected["status"] in call["summary"]
    # The model's second call used the demo service's real answer.
    assert expected["status"] in body["text"] and expected["carrier"] in body["text"]
    assert body["usage"]["model_calls"] == 2
    assert body["usage"]["models"][0]["calls"] == 2
    # The demo API saw one request, carrying the tool's credential, none of the caller's.
    [seen] = stack.demo_requests()
    assert seen == {
        "method": "GET",
        "path": "/orders/A-1234",
        "authorized": True,
        "forwarded_auth": False,
    }
    calls = stack.model_calls()["calls"]
    assert calls["gemini-2.5-flash"]["GenerateContent"] == 2
    # The exchange is stored with its tool call.
    stored = httpx.get(
        f"{stack.url('chat')}/v1/conversations/{body['conversation_id']}",
        headers=stack.auth(),
        timeout=10,
    ).json()
    [answer] = [m for m in stored["messages"] if m["role"] == "model"]
    assert answer["tool_calls"][0]["name"] == "order_status"


def test_stream_shows_tool_call_then_result_then_deltas(stack: LocalStack) -> None:
    response = httpx.post(
        f"{stack.url('stream')}/v1/chat:stream",
        json={"message": QUESTION},
        headers=stack.auth(),
        timeout=30,
    )
    assert response.status_code == 200, response.text
    events = sse_events(response.text)
    names = [name for name, _ in events]
    assert names[0] == "meta"
    first_delta = names.index("delta")
    assert names.index("tool_call") < names.index("tool_result") < first_delta
    assert names[-2:] == ["usage", "done"]
    call = dict(events)["tool_call"]
    result = dict(events)["tool_result"]
    assert call["name"] == result["name"] == "order_status"
    assert call["id"] == result["id"]
    assert result["status"] == "ok"
    text = "".join(data["text"] for name, data in events if name == "delta")
    assert order("A-1234")["status"] in text
    assert dict(events)["usage"]["model_calls"] == 2
    calls = stack.model_calls()["calls"]
    assert calls["gemini-2.5-flash"]["StreamGenerateContent"] == 2


def test_a_message_unrelated_to_every_tool_gets_a_plain_answer(stack: LocalStack) -> None:
    response = httpx.post(
        f"{stack.url('chat')}/v1/chat",
        json={"message": "Tell me a joke about clouds."},
        headers=stack.auth(),
        timeout=30,
    )
    body = response.json()
    assert response.status_code == 200, body
    assert body["tool_calls"] == []
    assert body["usage"]["model_calls"] == 1
    assert stack.demo_requests() == []


def test_tools_outside_the_callers_scopes_are_not_offered(stack: LocalStack) -> None:
    httpx.post(
        f"{stack.url('chat')}/v1/chat",
        json={"message": "Tell me about clouds."},
        headers=stack.auth(),
        timeout=30,
    ).raise_for_status()
    [seen] = stack.model_requests()
    # cancel_order needs tools:orders; handoff is the runtime's own, offered to everyone
    assert seen["tools"] == ["order_status", "handoff"]

    token = stack.token("bob", scopes=["tools:orders"])
    httpx.post(
        f"{stack.url('chat')}/v1/chat",
        json={"message": "Tell me about clouds, please."},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    ).raise_for_status()
    assert stack.model_requests()[-1]["tools"] == ["order_status", "cancel_order", "handoff"]


def test_naming_a_tool_the_caller_may_not_use_is_403_naming_it(stack: LocalStack) -> None:
    for url in (f"{stack.url('chat')}/v1/chat", f"{stack.url('stream')}/v1/chat:stream"):
        response = httpx.post(
            url,
            json={"message": "cancel order A-1", "tools": ["order_status", "cancel_order"]},
            headers=stack.auth(),
            timeout=30,
        )
        assert response.status_code == 403, response.text
        error = response.json()["error"]
        assert error["code"] == "permission_denied"
        assert "cancel_order" in error["message"]
        assert error["details"] == [{"field": "tools", "tool": "cancel_order"}]
    assert stack.model_calls()["total"] == 0


def test_tools_empty_list_offers_none(stack: LocalStack) -> None:
    response = httpx.post(
        f"{stack.url('chat')}/v1/chat",
        json={"message": QUESTION, "tools": []},
        headers=stack.auth(),
        timeout=30,
    )
    assert response.status_code == 200, response.text
    assert response.json()["tool_calls"] == []
    assert stack.model_requests()[-1]["tools"] == []
    assert stack.demo_requests() == []


def test_idempotent_tool_results_are_cached(stack: LocalStack) -> None:
    for conversation_message in (QUESTION, QUESTION + " Thanks!"):
        httpx.post(
            f"{stack.url('chat')}/v1/chat",
            json={"message": conversation_message, "temperature": 1.0},
            headers=stack.auth(),
            timeout=30,
        ).raise_for_status()
    # Two answers (not cached: temperature 1.0) used one demo API request: order_status's TTL.
    assert len(stack.demo_requests()) == 1
