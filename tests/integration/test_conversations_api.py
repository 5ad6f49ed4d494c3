"""Conversation reads and deletes, and idempotent chat, on the running chat function."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from tests.conftest import LocalStack


def chat(stack: LocalStack, user: str = "alice", **body: Any) -> dict[str, Any]:
    response = httpx.post(
        f"{stack.url('chat')}/v1/chat",
        json={"message": "hi", **body},
        headers=stack.auth(user),
        timeout=30,
    )
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def get(stack: LocalStack, path: str, user: str = "alice", **params: Any) -> httpx.Response:
    return httpx.get(
        f"{stack.url('chat')}{path}", params=params, headers=stack.auth(user), timeout=30
    )


def test_conversations_are_listed_newest_first_in_pages(stack: LocalStack) -> None:
    ids = [chat(stack, message=f"topic {i}")["conversation_id"] for i in range(3)]
    chat(stack, user="bob")
    first = get(stack, "/v1/conversations", page_size=2).json()
    assert [c["conversation_id"] for c in first["conversations"]] == [ids[2], ids[1]]
    assert first["conversations"][0]["title"] == "topic 2"
    assert first["conversations"][0]["message_count"] == 2
    second = get(
        stack, "/v1/conversations", page_size=2, page_token=first["next_page_token"]
    ).json()
    assert [c["conversation_id"] for c in second["conversations"]] == [ids[0]]
    assert second["next_page_token"] is None


def test_messages_are_paginated_newest_first(stack: LocalStack) -> None:
    cid = chat(stack, message="echo: one")["conversation_id"]
    chat(stack, message="echo: two", conversation_id=cid)
    page = get(stack, f"/v1/conversations/{cid}", page_size=3).json()
    assert [m["text"] for m in page["messages"]] == ["two", "echo: two", "one"]
    assert page["messages"][0]["role"] == "model" and page["messages"][0]["output_tokens"] == 1
    assert page["conversation"]["message_count"] == 4
    rest = get(stack, f"/v1/conversations/{cid}", page_size=3, page_token=page["next_page_token"])
    assert [m["text"] for m in rest.json()["messages"]] == ["echo: one"]


@pytest.mark.parametrize(
    "params,field",
    [
        ({"page_size": 0}, "page_size"),
        ({"page_size": 101}, "page_size"),
        ({"page_size": "many"}, "page_size"),
        ({"page_token": "../../etc"}, "page_token"),
        ({"page_token": "nosuchdocument"}, "page_token"),
        ({"sort": "asc"}, "sort"),
    ],
)
def test_bad_page_parameters_are_422(stack: LocalStack, params: dict[str, Any], field: str) -> None:
    response = get(stack, "/v1/conversations", **params)
    assert response.status_code == 422
    assert field in {d["field"] for d in response.json()["error"]["details"]}


async def test_delete_removes_the_conversation_and_every_message(
    stack: LocalStack, firestore_db: Any
) -> None:
    cid = chat(stack)["conversation_id"]
    messages = firestore_db.collection("conversations").document(cid).collection("messages")
    batch = firestore_db.batch()
    for i in range(450):  # more than one delete batch
        batch.set(messages.document(f"extra{i:04d}"), {"role": "user", "text": "x"})
    await batch.commit()
    response = httpx.delete(
        f"{stack.url('chat')}/v1/conversations/{cid}", headers=stack.auth(), timeout=60
    )
    assert response.status_code == 200
    assert response.json() == {"conversation_id": cid, "deleted_messages": 452}
    assert [d async for d in messages.stream()] == []
    assert not (await firestore_db.collection("conversations").document(cid).get()).exists
    assert get(stack, f"/v1/conversations/{cid}").status_code == 404


async def test_concurrent_replays_make_one_call_and_identical_bodies(
    stack: LocalStack, firestore_db: Any
) -> None:
    headers = {**stack.auth(), "Idempotency-Key": "order-42"}
    body = {"message": "idempotent please"}
    limits = httpx.Limits(max_connections=200)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        responses = await asyncio.gather(
            *(
                client.post(f"{stack.url('chat')}/v1/chat", json=body, headers=headers)
                for _ in range(200)
            )
        )
    assert {r.status_code for r in responses} == {200}
    assert len({r.content for r in responses}) == 1
    assert stack.model_calls()["total"] == 1
    conversations = [c async for c in firestore_db.collection("conversations").stream()]
    assert len(conversations) == 1
    messages = [m async for m in conversations[0].reference.collection("messages").stream()]
    assert len(messages) == 2
    later = httpx.post(f"{stack.url('chat')}/v1/chat", json=body, headers=headers, timeout=30)
    assert later.content == responses[0].content
    assert stack.model_calls()["total"] == 1


def test_same_key_with_another_body_is_422(stack: LocalStack) -> None:
    headers = {**stack.auth(), "Idempotency-Key": "k-1"}
    url = f"{stack.url('chat')}/v1/chat"
    assert httpx.post(url, json={"message": "a"}, headers=headers, timeout=30).status_code == 200
    other = httpx.post(url, json={"message": "b"}, headers=headers, timeout=30)
    assert other.status_code == 422
    assert "Idempotency-Key" in other.json()["error"]["message"]
    assert stack.model_calls()["total"] == 1


def test_request_id_field_is_an_idempotency_key(stack: LocalStack) -> None:
    first = chat(stack, message="by field", request_id="client-req-1")
    again = chat(stack, message="by field", request_id="client-req-1")
    assert first == again and stack.model_calls()["total"] == 1


def test_keys_are_per_caller(stack: LocalStack) -> None:
    url = f"{stack.url('chat')}/v1/chat"
    for user in ("alice", "bob"):
        headers = {**stack.auth(user), "Idempotency-Key": "shared-key"}
        response = httpx.post(url, json={"message": "temperature 1"}, headers=headers, timeout=30)
        assert response.status_code == 200
    bodies = [
        c
        for c in httpx.get(
            f"{stack.url('chat')}/v1/conversations", headers=stack.auth("bob"), timeout=30
        ).json()["conversations"]
    ]
    assert len(bodies) == 1  # bob got his own answer, not alice's


def test_a_failed_first_attempt_can_be_retried(stack: LocalStack) -> None:
    stack.fault("*", error_rate=1.0, status="INVALID_ARGUMENT")
    headers = {**stack.auth(), "Idempotency-Key": "retry-me"}
    url = f"{stack.url('chat')}/v1/chat"
    failed = httpx.post(url, json={"message": "x"}, headers=headers, timeout=30)
    assert failed.status_code == 400
    stack.clear_faults()
    retried = httpx.post(url, json={"message": "x"}, headers=headers, timeout=30)
    assert retried.status_code == 200
    assert json.loads(retried.content)["text"]


@pytest.mark.parametrize("retention_days", [0, 30])
async def test_retention_puts_a_ttl_on_the_conversation_and_each_message(
    firestore_db: Any, retention_days: int
) -> None:
    """Firestore's TTL deletes documents one by one, never a subcollection with its parent."""
    from datetime import UTC, datetime, timedelta

    from shared.llm.types import LlmResult
    from shared.stores.conversations import ConversationStore, new_id

    store = ConversationStore(firestore_db)
    cid, mid = new_id(), new_id()
    await store.append_exchange(
        owner="alice",
        conversation_id=cid,
        new_conversation=True,
        message_id=mid,
        user_text="keep me a while",
        answer=LlmResult(text="sure", model="gemini-2.5-flash"),
        request_id="r1",
        retention_days=retention_days or None,
    )
    conversation = firestore_db.collection("conversations").document(cid)
    docs = [await conversation.get()] + [
        d async for d in conversation.collection("messages").stream()
    ]
    assert len(docs) == 3
    expiries = [d.to_dict().get("expire_at") for d in docs]
    if not retention_days:
        assert expiries == [None, None, None]
        return
    wanted = datetime.now(UTC) + timedelta(days=retention_days)
    assert all(abs((e - wanted).total_seconds()) < 60 for e in expiries)
