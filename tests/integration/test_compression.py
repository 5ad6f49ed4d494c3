"""gzip on the running functions: a long conversation list is compressed for a client that accepts
gzip and decodes to exactly the plain answer; replays stay byte-identical; streams stay plain."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from shared.stores.conversations import new_id
from tests.conftest import LocalStack

QUESTIONS = [
    "Where is my order {n}?",
    "Can I change the delivery address of order {n} to my office?",
    "How do I return the shoes from order {n}, they are too small",
    "Is there a student discount on the annual plan?",
    "My invoice {n} shows VAT twice, can you check it?",
]


async def raw(
    method: str, url: str, headers: dict[str, str], **kwargs: Any
) -> tuple[httpx.Response, bytes]:
    """The response and its body as sent: httpx would decode gzip, and ask for it unasked."""
    async with (
        httpx.AsyncClient(timeout=30) as http,
        http.stream(method, url, headers=headers, **kwargs) as response,
    ):
        return response, b"".join([chunk async for chunk in response.aiter_raw()])


async def seed(firestore_db: Any, owner: str, count: int) -> None:
    """``count`` conversations of ``owner``, as chats leave them, an hour apart."""
    start = datetime.now(UTC) - timedelta(days=30)
    batch = firestore_db.batch()
    for i in range(count):
        at = start + timedelta(hours=i)
        batch.set(
            firestore_db.collection("conversations").document(new_id()),
            {
                "owner": owner,
                "title": QUESTIONS[i % len(QUESTIONS)].format(n=1000 + i),
                "created_at": at,
                "updated_at": at + timedelta(minutes=3),
                "message_count": 2 * (1 + i % 4),
                "summary": "",
            },
        )
    await batch.commit()


async def test_a_long_conversation_list_is_gzipped_for_clients_that_accept_it(
    stack: LocalStack, firestore_db: Any
) -> None:
    chat = stack.url("chat")
    auth = stack.auth("alice")
    first = httpx.post(f"{chat}/v1/chat", json={"message": "hi"}, headers=auth, timeout=30)
    assert first.status_code == 200, first.text
    cid = first.json()["conversation_id"]
    owner = (await firestore_db.collection("conversations").document(cid).get()).to_dict()["owner"]
    await seed(firestore_db, owner, 99)
    url = f"{chat}/v1/conversations?page_size=100"

    plain_response, plain = await raw("GET", url, {**auth, "Accept-Encoding": "identity"})
    assert plain_response.status_code == 200
    assert "content-encoding" not in plain_response.headers
    assert "accept-encoding" in plain_response.headers["vary"].lower()
    assert int(plain_response.headers["content-length"]) == len(plain)
    assert len(json.loads(plain)["conversations"]) == 100

    response, packed = await raw("GET", url, {**auth, "Accept-Encoding": "gzip"})
    assert response.status_code == 200
    assert response.headers["content-encoding"] == "gzip"
    assert "accept-encoding" in response.headers["vary"].lower()
    assert int(response.headers["content-length"]) == len(packed)
    assert gzip.decompress(packed) == plain
    assert json.loads(gzip.decompress(packed)) == json.loads(plain)
    print(
        f"GET /v1/conversations?page_size=100: {len(plain)} bytes plain, {len(packed)} gzip "
        f"({len(plain) / len(packed):.1f}x smaller)"
    )
    assert len(packed) * 3 < len(plain)

    refused, body = await raw("GET", url, {**auth, "Accept-Encoding": "gzip;q=0, *"})
    assert "content-encoding" not in refused.headers and body == plain


async def test_an_idempotent_replay_is_byte_identical_compressed_or_not(stack: LocalStack) -> None:
    url = f"{stack.url('chat')}/v1/chat"
    headers = {**stack.auth("alice"), "Idempotency-Key": "gzip-replay-1"}
    body = {"message": "echo: " + " ".join(f"word{i}" for i in range(400))}
    first, packed = await raw("POST", url, {**headers, "Accept-Encoding": "gzip"}, json=body)
    assert first.status_code == 200
    assert first.headers["content-encoding"] == "gzip"
    replay, packed_again = await raw("POST", url, {**headers, "Accept-Encoding": "gzip"}, json=body)
    assert replay.status_code == 200
    assert packed_again == packed
    plain_replay, plain = await raw(
        "POST", url, {**headers, "Accept-Encoding": "identity"}, json=body
    )
    assert "content-encoding" not in plain_replay.headers
    assert gzip.decompress(packed) == plain
    assert json.loads(plain)["text"].startswith("word0 word1")


async def test_event_streams_are_never_compressed(stack: LocalStack) -> None:
    url = f"{stack.url('stream')}/v1/chat:stream"
    headers = {**stack.auth("alice"), "Accept-Encoding": "gzip"}
    body = {"message": "echo: " + " ".join(f"word{i}" for i in range(400))}
    response, events = await raw("POST", url, headers, json=body)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert "content-encoding" not in response.headers
    assert b"event: done" in events
