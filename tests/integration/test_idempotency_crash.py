"""Idempotent chat, exactly once across crashes: the answer is sealed in the exchange's commit.

Against the Firestore emulator with the real stores; "another instance" is a second
`Idempotency` over its own client, as two Cloud Run instances would be.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from shared.idempotency import COLLECTION, Idempotency, StoredResponse
from shared.llm.types import LlmResult
from shared.stores.conversations import ConversationStore, new_id
from tests.conftest import LocalStack

Seal = Any  # the callable `Idempotency.run` hands to its producer


def settings_for(stack: LocalStack, lease_s: float = 300.0) -> Any:
    """Settings with a lease of ``lease_s`` (the rule lease > 2 × deadline + 60 s waived)."""
    settings = stack.client_settings()
    return settings.model_copy(update={"idempotency_lease_s": lease_s})


def record_id(subject: str, key: str) -> str:
    return hashlib.sha256(f"{subject}\x1f{key}".encode()).hexdigest()


async def pending_record(db: Any, created: datetime, lease_s: float) -> None:
    """Alice's key ``k`` claimed at ``created`` by a first request that never finished."""
    await (
        db.collection(COLLECTION)
        .document(record_id("alice", "k"))
        .create(
            {
                "state": "pending",
                "body_hash": "h",
                "created_at": created,
                "lease_until": created + timedelta(seconds=lease_s),
                "expire_at": created + timedelta(hours=1),
            }
        )
    )


async def store_exchange(
    store: ConversationStore, conversation_id: str, text: str, also: Sequence[Any] = ()
) -> None:
    await store.append_exchange(
        owner="alice",
        conversation_id=conversation_id,
        new_conversation=True,
        message_id=new_id(),
        user_text="hello",
        answer=LlmResult(text=text, model="gemini-2.5-flash"),
        request_id="r1",
        also=also,
    )


def exchange_producer(
    store: ConversationStore, conversation_id: str, text: str, gate: asyncio.Event | None = None
) -> Any:
    """Like the chat handler: stores an exchange with the sealed answer, returns the answer."""
    calls: list[str] = []
    started = asyncio.Event()  # set once the request holds its claim and produces

    async def produce(seal: Seal) -> StoredResponse:
        calls.append(conversation_id)
        started.set()
        if gate is not None:
            await gate.wait()
        body = json.dumps({"conversation_id": conversation_id, "text": text}).encode()
        await store_exchange(store, conversation_id, text, also=seal(body))
        return StoredResponse(200, body)

    produce.calls = calls  # type: ignore[attr-defined]
    produce.started = started  # type: ignore[attr-defined]
    return produce


async def test_a_sealed_answer_shares_its_exchanges_commit(
    stack: LocalStack, firestore_db: Any
) -> None:
    headers = {**stack.auth(), "Idempotency-Key": "one-commit"}
    response = httpx.post(
        f"{stack.url('chat')}/v1/chat", json={"message": "hi"}, headers=headers, timeout=30
    )
    assert response.status_code == 200
    cid = response.json()["conversation_id"]
    conversation = firestore_db.collection("conversations").document(cid)
    docs = [await conversation.get()]
    docs += [m async for m in conversation.collection("messages").stream()]
    records = [r async for r in firestore_db.collection(COLLECTION).stream()]
    assert len(docs) == 3 and len(records) == 1
    assert records[0].to_dict()["state"] == "done"
    assert bytes(records[0].to_dict()["body"]) == response.content
    # One commit: every document it wrote carries the same update time.
    assert {d.update_time for d in docs} == {records[0].update_time}


async def test_a_first_request_that_died_is_taken_over_after_its_lease(
    stack: LocalStack, firestore_db: Any
) -> None:
    settings = settings_for(stack, lease_s=5.0)
    store = ConversationStore(firestore_db)
    # What an instance that died mid-request leaves behind: its lease ran out a second ago.
    await pending_record(firestore_db, datetime.now(UTC) - timedelta(seconds=6), lease_s=5)
    produce = exchange_producer(store, "c-retry", "answered on retry")
    stored = await Idempotency(firestore_db, settings).run("alice", "k", "h", produce)
    assert json.loads(stored.body)["text"] == "answered on retry"
    assert produce.calls == ["c-retry"]
    again = exchange_producer(store, "c-never", "must not run")
    replay = await Idempotency(firestore_db, settings).run("alice", "k", "h", again)
    assert replay == stored and again.calls == []


async def test_a_pending_request_within_its_lease_is_not_taken_over(
    stack: LocalStack, firestore_db: Any
) -> None:
    settings = settings_for(stack).model_copy(update={"idempotency_wait_s": 0.3})
    await pending_record(firestore_db, datetime.now(UTC), lease_s=120)
    produce = exchange_producer(ConversationStore(firestore_db), "c2", "no")
    from shared import errors

    with pytest.raises(errors.Conflict, match="still running"):
        await Idempotency(firestore_db, settings).run("alice", "k", "h", produce)
    assert produce.calls == []


async def test_an_owner_that_lost_its_claim_stores_nothing_and_answers_as_a_replay(
    stack: LocalStack, firestore_db: Any
) -> None:
    from google.cloud.firestore_v1.async_client import AsyncClient

    settings = settings_for(stack, lease_s=1.0)
    other_db = AsyncClient(project=stack.settings.project_id)  # the second instance
    slow_store, fast_store = ConversationStore(firestore_db), ConversationStore(other_db)
    gate = asyncio.Event()
    slow = exchange_producer(slow_store, "c-slow", "late", gate)
    first = asyncio.create_task(Idempotency(firestore_db, settings).run("alice", "k", "h", slow))
    await slow.started.wait()  # the first owner holds the claim, then stalls ...
    fast = exchange_producer(fast_store, "c-fast", "taken over")
    later = datetime.now(UTC) + timedelta(seconds=2)  # ... past its lease, for the second
    taken = await Idempotency(other_db, settings, clock=lambda: later).run("alice", "k", "h", fast)
    gate.set()  # the first owner wakes up and tries to commit its exchange and its seal
    assert await first == taken  # its commit was refused; it answers with the stored answer
    conversations = firestore_db.collection("conversations")
    assert not (await conversations.document("c-slow").get()).exists  # nothing half-written
    assert (await conversations.document("c-fast").get()).exists
    record = await firestore_db.collection(COLLECTION).document(record_id("alice", "k")).get()
    assert record.to_dict()["state"] == "done" and bytes(record.to_dict()["body"]) == taken.body
    other_db.close()  # type: ignore[no-untyped-call]


async def test_a_refused_seal_fails_only_its_own_exchange(
    stack: LocalStack, firestore_db: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Exchanges share group commits; one holding a stale claim must not sink the others."""
    from google.api_core.exceptions import FailedPrecondition
    from google.protobuf.timestamp_pb2 import Timestamp

    from shared.stores import writes

    store = ConversationStore(firestore_db)
    batches: list[int] = []
    real_batch = firestore_db.batch

    def counting_batch() -> Any:
        batches.append(1)
        return real_batch()

    record = firestore_db.collection(COLLECTION).document("stale")
    await record.create({"state": "pending"})
    monkeypatch.setattr(firestore_db, "batch", counting_batch)
    stale_seal = writes.merge_write(
        record._document_path, {"state": "done"}, last_update_time=Timestamp(seconds=1)
    )
    results = await asyncio.gather(
        store_exchange(store, "c-stale", "refused", also=[stale_seal]),
        store_exchange(store, "c-fine", "kept"),
        return_exceptions=True,
    )
    assert isinstance(results[0], FailedPrecondition) and results[1] is None
    assert len(batches) == 3  # the shared commit, then each exchange alone
    conversations = firestore_db.collection("conversations")
    assert not (await conversations.document("c-stale").get()).exists
    assert (await conversations.document("c-fine").get()).exists


async def test_an_exchange_whose_commit_landed_is_not_stored_twice(
    stack: LocalStack, firestore_db: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A commit that landed but whose reply was lost is retried: its creates now refuse, and the
    member is reported stored — the conversation counts its messages once."""
    from shared.stores.group_commit import GroupCommitter

    store = ConversationStore(firestore_db)
    members: list[Any] = []
    real_commit = store._committer.commit

    async def recording(write: Any, count: int) -> None:
        members.append((write, count))
        await real_commit(write, count)

    monkeypatch.setattr(store._committer, "commit", recording)
    await store_exchange(store, "c-twice", "stored once")
    write, count = members[0]
    committer = GroupCommitter(firestore_db)
    await committer.commit(write, count)  # the same writes again, alone
    for _ in range(2):  # and in company, where the refusal sends each member on alone
        await asyncio.gather(
            committer.commit(write, count), store_exchange(store, f"c-{new_id()}", "company")
        )
    conversation = await firestore_db.collection("conversations").document("c-twice").get()
    assert conversation.to_dict()["message_count"] == 2
    assert len(await firestore_db.collection("conversations").get()) == 3


async def test_waiters_on_a_cancelled_first_request_get_a_retryable_conflict(
    stack: LocalStack, firestore_db: Any
) -> None:
    from shared import errors

    idempotency = Idempotency(firestore_db, settings_for(stack))
    gate = asyncio.Event()
    slow = exchange_producer(ConversationStore(firestore_db), "c-cancel", "never", gate)
    first = asyncio.create_task(idempotency.run("alice", "k", "h", slow))
    await slow.started.wait()
    waiter = asyncio.create_task(idempotency.run("alice", "k", "h", slow))
    await asyncio.sleep(0.1)
    first.cancel()
    with pytest.raises(errors.Conflict, match="interrupted"):
        await waiter
    assert slow.calls == ["c-cancel"]
    # The cancelled request left nothing behind: a retry runs.
    retry = exchange_producer(ConversationStore(firestore_db), "c-after", "ran")
    stored = await idempotency.run("alice", "k", "h", retry)
    assert json.loads(stored.body)["text"] == "ran"


async def lapsed_stream_record(db: Any, state: str) -> None:
    """Alice's stream key ``s`` whose first request's lease ran out an hour ago, in ``state``."""
    created = datetime.now(UTC) - timedelta(hours=1)
    await (
        db.collection(COLLECTION)
        .document(record_id("alice", "s"))
        .create(
            {
                "state": state,
                "owner": "alice",
                "body_hash": "h",
                "stream_id": "old-stream",
                "created_at": created,
                "lease_until": created + timedelta(seconds=300),
                "expire_at": created + timedelta(hours=24),
            }
        )
    )


@pytest.mark.parametrize("state", ["pending", "answered"])
async def test_a_lapsed_stream_is_taken_over_only_if_its_answer_was_never_stored(
    stack: LocalStack, firestore_db: Any, state: str
) -> None:
    """Pending and lapsed: its producer is gone; the replay runs it again under a new stream id
    without following the dead buffer. Answered: its exchange is stored, so it never runs
    twice; the replay is told to read the conversation."""
    from shared import errors

    await lapsed_stream_record(firestore_db, state)
    idempotency = Idempotency(firestore_db, settings_for(stack))
    started: list[str] = []
    attached: list[str] = []

    async def start(stream_id: str, claim: Any) -> Any:
        started.append(stream_id)

        async def events() -> Any:
            yield b"event: done\n\n"

        return events()

    async def attach(stream_id: str) -> Any:
        attached.append(stream_id)
        return None

    if state == "pending":
        await idempotency.stream("alice", "s", "h", "unused", start, attach)
        assert len(started) == 1 and started[0] != "old-stream" and attached == []
    else:
        with pytest.raises(errors.Conflict, match="read it from its conversation"):
            await idempotency.stream("alice", "s", "h", "unused", start, attach)
        assert started == []
