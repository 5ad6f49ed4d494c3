"""Hand-off to a person, end to end: the user asks for a person, the event reaches the support
topic through the Pub/Sub emulator, an operator replies with agentctl and the user's open session
receives it, while the model is never called; the agent's handoff tool and a streak of unsure
answers start one too; only support staff reach the operator routes."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from typing import Any

import httpx
import pytest

from shared.auth.apikeys import ApiKeyStore
from tests.conftest import LocalStack
from tests.integration.session_client import open_session, receive, until
from tests.integration.test_stream_resume import read_events


def chat(stack: LocalStack, user: str = "alice", **body: Any) -> dict[str, Any]:
    response = httpx.post(
        f"{stack.url('chat')}/v1/chat", json=body, headers=stack.auth(user), timeout=30
    )
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


def operator(stack: LocalStack) -> dict[str, str]:
    """Headers of a support person: an ID token whose scopes claim lists handoffs."""
    return {"Authorization": f"Bearer {stack.token('sam', scopes=['handoffs'])}"}


def model_calls(stack: LocalStack) -> int:
    calls = stack.model_calls()["calls"]
    return sum(n for model in calls.values() for n in model.values())


async def announced(stack: LocalStack, conversation_id: str) -> dict[str, Any] | None:
    """The hand-off event for ``conversation_id`` on the support subscription, if it came."""
    url = (
        f"http://127.0.0.1:{stack.settings.stack_pubsub_port}/v1/projects/"
        f"{stack.settings.project_id}/subscriptions/ngx-handoffs-support"
    )
    async with httpx.AsyncClient(timeout=10) as client:
        for _ in range(50):
            pulled = (await client.post(f"{url}:pull", json={"maxMessages": 10})).json()
            for item in pulled.get("receivedMessages", []):
                await client.post(f"{url}:acknowledge", json={"ackIds": [item["ackId"]]})
                event = json.loads(base64.b64decode(item["message"]["data"]))
                if event["conversation_id"] == conversation_id:
                    found: dict[str, Any] = {**event, **item["message"].get("attributes", {})}
                    return found
            await asyncio.sleep(0.1)
    return None


async def test_a_person_takes_over_and_the_model_is_not_called_meanwhile(
    stack: LocalStack, firestore_db: Any
) -> None:
    first = chat(stack, message="Where is my parcel?")
    cid = first["conversation_id"]
    before = model_calls(stack)
    asked = chat(
        stack, message="This is not helping, I want to talk to a human", conversation_id=cid
    )
    assert asked["finish_reason"] == "handoff" and asked["handoff"]["status"] == "pending"
    assert asked["handoff"]["reason"] == "user_asked" and asked["usage"]["model_calls"] == 0
    event = await announced(stack, cid)
    assert event is not None and event["reason"] == "user_asked" and event["kind"] == "handoff"
    assert "alice" not in json.dumps(event)  # the owner travels as a pseudonym
    async with open_session(stack.url("stream"), stack.token()) as ws:
        await receive(ws)  # ready
        replied = stack.agentctl("handoff", "reply", cid, "Hi, Sam here. Let me check.", "--yes")
        assert replied.returncode == 0, replied.stderr
        live = await until(ws, "operator_message", timeout=10)
        assert live[-1]["data"]["text"] == "Hi, Sam here. Let me check."
        assert live[-1]["data"]["conversation_id"] == cid
        held = chat(stack, message="Thanks, waiting", conversation_id=cid)
        assert held["finish_reason"] == "handoff" and held["handoff"]["status"] == "active"
        assert model_calls(stack) == before  # the model was not asked, not once
        listing = stack.agentctl("handoff", "list", "--json")
        assert listing.returncode == 0, listing.stderr
        assert [h["conversation_id"] for h in json.loads(listing.stdout)] == [cid]
        closed = httpx.post(
            f"{stack.url('chat')}/v1/handoffs/{cid}/close", headers=operator(stack), timeout=10
        )
        assert closed.status_code == 200, closed.text
        assert (await until(ws, "handoff_closed", timeout=10))[-1]["data"]["status"] == "closed"
    detail = httpx.get(
        f"{stack.url('chat')}/v1/conversations/{cid}", headers=stack.auth(), timeout=10
    ).json()
    roles = [m["role"] for m in detail["messages"]]
    assert "operator" in roles
    back = chat(stack, message="And now?", conversation_id=cid)
    assert back["finish_reason"] == "STOP" and back.get("handoff") is None
    assert model_calls(stack) == before + 1


async def test_a_held_stream_says_so_in_its_events(stack: LocalStack) -> None:
    async with (
        httpx.AsyncClient(timeout=30) as client,
        client.stream(
            "POST",
            f"{stack.url('stream')}/v1/chat:stream",
            json={"message": "Can I speak to a real person please?"},
            headers=stack.auth(),
        ) as response,
    ):
        events, _ = await read_events(response)
    assert [e["event"] for e in events] == ["meta", "handoff", "delta", "usage", "done"]
    assert events[-1]["data"]["finish_reason"] == "handoff"
    assert model_calls(stack) == 0


async def test_the_agent_hands_off_with_its_tool(stack: LocalStack) -> None:
    answer = chat(stack, message='tool:handoff {"reason": "a refund above my limit"}')
    assert [(c["name"], c["status"]) for c in answer["tool_calls"]] == [("handoff", "ok")]
    cid = answer["conversation_id"]
    event = await announced(stack, cid)
    assert event is not None and event["reason"] == "agent"
    before = model_calls(stack)
    held = chat(stack, message="ok", conversation_id=cid)
    assert held["handoff"]["reason"] == "agent" and model_calls(stack) == before
    again = chat(stack, message='tool:handoff {"reason": "again"}')
    assert again["usage"]["cached"] is False  # an answer that acted is never cached


async def test_unsure_answers_in_a_row_ask_a_person_to_join(stack: LocalStack) -> None:
    first = chat(stack, message="Explain my bill [avg_logprobs=-2.5]", tier="auto")
    cid = first["conversation_id"]
    assert len(first["usage"]["models"]) == 2  # escalated: the agent was unsure
    second = chat(
        stack, message="Still unclear [avg_logprobs=-2.5]", tier="auto", conversation_id=cid
    )
    assert second["finish_reason"] == "STOP"  # this answer still comes from the model
    third = chat(stack, message="Hello?", conversation_id=cid)
    assert third["handoff"]["reason"] == "unsure_answers"


async def test_a_sure_answer_resets_the_streak(stack: LocalStack) -> None:
    first = chat(stack, message="Explain my bill [avg_logprobs=-2.5]", tier="auto")
    cid = first["conversation_id"]
    chat(stack, message="Got it, thanks", tier="auto", conversation_id=cid)  # sure
    chat(stack, message="One more [avg_logprobs=-2.5]", tier="auto", conversation_id=cid)
    last = chat(stack, message="Bye", conversation_id=cid)
    assert last.get("handoff") is None


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/v1/handoffs", None),
        ("POST", "/v1/handoffs/abc/messages", {"text": "hi"}),
        ("POST", "/v1/handoffs/abc/close", None),
    ],
)
async def test_only_support_staff_reach_the_operator_routes(
    stack: LocalStack, firestore_db: Any, method: str, path: str, body: Any
) -> None:
    key, _ = await ApiKeyStore(firestore_db).create("app")
    async with httpx.AsyncClient(base_url=stack.url("chat"), timeout=10) as client:
        for headers in (stack.auth(), {"X-API-Key": key}):
            response = await client.request(method, path, json=body, headers=headers)
            assert response.status_code == 403, response.text
        assert (await client.request(method, path, json=body)).status_code == 401


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/v1/handoffs/__reserved__/close", None, 404),
        ("/v1/handoffs/a%2F..%2Fb/close", None, 404),
        ("/v1/handoffs/nosuchconversation/messages", {"text": "hello"}, 404),
        ("/v1/handoffs/abc/messages", {"text": ""}, 422),
        ("/v1/handoffs/abc/messages", {"text": "   "}, 422),
        ("/v1/handoffs/abc/messages", {"text": "bell\u0007"}, 422),
        ("/v1/handoffs/abc/messages", {"text": "x" * 4001}, 422),
        ("/v1/handoffs/abc/messages", {"text": "hi", "extra": 1}, 422),
        ("/v1/handoffs?status=everything", None, 422),
    ],
)
async def test_bad_operator_requests_get_the_error_envelope(
    stack: LocalStack, path: str, body: Any, status: int
) -> None:
    method = "GET" if path.startswith("/v1/handoffs?") else "POST"
    async with httpx.AsyncClient(base_url=stack.url("chat"), timeout=10) as client:
        response = await client.request(method, path, json=body, headers=operator(stack))
    assert response.status_code == status, response.text
    assert set(response.json()["error"]) == {"code", "message", "details", "request_id"}


async def test_agentctl_handoff_is_a_dry_run_without_yes(stack: LocalStack) -> None:
    asked = chat(stack, message="Let me talk to an agent")
    cid = asked["conversation_id"]
    dry = stack.agentctl("handoff", "close", cid)
    assert dry.returncode == 0 and "dry run" in dry.stderr
    still = stack.agentctl("handoff", "list", "--json")
    assert [h["conversation_id"] for h in json.loads(still.stdout)] == [cid]
    assert stack.agentctl("handoff", "reply", "nosuch", "hi").returncode == 1
    started = time.monotonic()
    done = stack.agentctl("handoff", "close", cid, "--yes")
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - started < 60
    assert json.loads(stack.agentctl("handoff", "list", "--json").stdout) == []
