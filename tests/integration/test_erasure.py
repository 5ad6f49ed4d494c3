"""Erasure of a user: after ``DELETE /v1/me`` nothing of the subject is left in any Firestore
collection or any Redis key, others keep their data, and no restore brings the subject back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio
from google.cloud.firestore_v1.base_query import FieldFilter

from shared.auth.apikeys import ApiKeyStore
from shared.backup.gapic import Database
from shared.backup.jobs import Backups
from shared.backup.restore import Restorer, Target
from shared.backup.sinks import open_sink
from shared.settings import Settings
from tests.conftest import LocalStack

ALICE, BOB = "user:alice", "user:bob"


@pytest.fixture
def settings(stack: LocalStack, tmp_path: Path) -> Settings:
    return stack.client_settings(
        backup_sink=f"file://{tmp_path / 'backups'}",
        backup_collections=["conversations", "api_keys", "idempotency", "config"],
    )


async def use_everything(stack: LocalStack, user: str, db: Any) -> set[str]:
    """Leave every kind of trace a user can leave; returns its identifiers and texts."""
    marker = f"{user}-private-words"
    traces = {marker}
    headers = stack.auth(user)
    chat, stream = f"{stack.url('chat')}/v1/chat", f"{stack.url('stream')}/v1/chat:stream"
    plaintext, record = await ApiKeyStore(db).create(f"{user} phone", subject=f"user:{user}")
    traces.add(record.key_id)
    async with httpx.AsyncClient(timeout=30) as client:
        first = (
            await client.post(chat, json={"message": f"echo: {marker}"}, headers=headers)
        ).json()
        cid = first["conversation_id"]
        again = {"message": f"echo: more {marker}", "conversation_id": cid}
        keyed = {**headers, "Idempotency-Key": f"{user}-key"}
        second = (await client.post(chat, json=again, headers=keyed)).json()
        streamed = await client.post(
            stream,
            json={"message": f"echo: streamed {marker}"},
            headers={**headers, "Idempotency-Key": f"{user}-stream-key"},
        )
        assert streamed.status_code == 200
        by_key = await client.post(
            chat, json={"message": f"echo: by key {marker}"}, headers={"X-API-Key": plaintext}
        )
        assert by_key.status_code == 200, by_key.text
    traces |= {cid, first["message_id"], second["message_id"], by_key.json()["conversation_id"]}
    traces |= {line[4:].split(":")[0] for line in streamed.text.splitlines() if line[:4] == "id: "}
    return traces


async def firestore_texts(db: Any) -> list[str]:
    """Every document of every collection and subcollection, as text."""
    found: list[str] = []

    async def walk(collection: Any) -> None:
        async for doc in collection.stream():
            found.append(f"{doc.reference.path} {json.dumps(doc.to_dict(), default=str)}")
            async for sub in doc.reference.collections():
                await walk(sub)

    async for collection in db.collections():
        await walk(collection)
    return found


async def redis_texts(url: str) -> list[str]:
    """Every Redis key with its value, whatever its type, as text."""
    client: Any = redis.asyncio.Redis.from_url(url)
    found = []
    async for key in client.scan_iter(count=1000):
        kind = (await client.type(key)).decode()
        value = {
            "string": client.get,
            "hash": client.hgetall,
            "set": client.smembers,
            "list": lambda k: client.lrange(k, 0, -1),
            "zset": lambda k: client.zrange(k, 0, -1),
            "stream": client.xrange,
        }[kind](key)
        found.append(f"{key!r} {await value!r}")
    await client.aclose()
    return found


def mentioning(texts: list[str], traces: set[str]) -> list[str]:
    return [text for text in texts if any(trace in text for trace in traces)]


async def test_delete_me_leaves_nothing_of_the_subject_and_restores_leave_it_out(
    stack: LocalStack, firestore_db: Any, settings: Settings
) -> None:
    alice = await use_everything(stack, "alice", firestore_db) | {ALICE}
    bob = await use_everything(stack, "bob", firestore_db) | {BOB}
    assert mentioning(await firestore_texts(firestore_db), alice)  # the scans can see traces
    assert mentioning(await redis_texts(stack.redis_url), alice)
    before = await Backups(settings).run()  # a backup holding both users

    async with httpx.AsyncClient(timeout=30) as client:
        erased = await client.delete(f"{stack.url('chat')}/v1/me", headers=stack.auth("alice"))
    assert erased.status_code == 200, erased.text
    report = erased.json()
    assert report["subject"].startswith("sub_") and "alice" not in erased.text
    assert (report["conversations"], report["messages"]) == (3, 8)
    assert report["idempotency_records"] == 2 and report["api_keys"] == 1
    assert report["memorystore_keys"] > 0

    assert mentioning(await firestore_texts(firestore_db), alice) == []
    assert mentioning(await redis_texts(stack.redis_url), alice) == []
    assert mentioning(await firestore_texts(firestore_db), bob)  # the others keep theirs
    assert mentioning(await redis_texts(stack.redis_url), bob)

    # Restoring the older backup brings back what was lost of others, never the erased subject.
    bob_conversations = firestore_db.collection("conversations").where(
        filter=FieldFilter("owner", "==", BOB)
    )
    async for doc in bob_conversations.stream():
        await doc.reference.delete()
    restore = await Restorer(settings).restore(
        open_sink(settings.backup_sink or ""),
        before.backup_id,
        Target(Database(settings.project_id)),
    )
    assert restore["skipped_erased"] == 3 + 8 + 2 + 1
    assert mentioning(await firestore_texts(firestore_db), alice) == []
    assert len([d async for d in bob_conversations.stream()]) == 3

    # A subject that comes back after its erasure is restored from backups taken since.
    async with httpx.AsyncClient(timeout=30) as client:
        back = await client.post(
            f"{stack.url('chat')}/v1/chat",
            json={"message": "hi again"},
            headers=stack.auth("alice"),
        )
    after = await Backups(settings).run()
    await back_doc(firestore_db, back.json()["conversation_id"]).delete()
    restore = await Restorer(settings).restore(
        open_sink(settings.backup_sink or ""),
        after.backup_id,
        Target(Database(settings.project_id)),
    )
    assert restore["skipped_erased"] == 0
    assert (await back_doc(firestore_db, back.json()["conversation_id"]).get()).exists


def back_doc(db: Any, conversation_id: str) -> Any:
    return db.collection("conversations").document(conversation_id)


async def test_agentctl_users_erase_is_a_dry_run_unless_yes(
    stack: LocalStack, firestore_db: Any
) -> None:
    traces = await use_everything(stack, "carol", firestore_db) | {"user:carol"}
    dry = stack.agentctl("users", "erase", "user:carol", "--json")
    assert dry.returncode == 0, dry.stderr
    counted = json.loads(dry.stdout)
    assert counted["dry_run"] is True and counted["conversations"] == 3
    assert "dry run" in dry.stderr
    assert mentioning(await firestore_texts(firestore_db), traces)  # nothing changed
    assert [t for t in await firestore_texts(firestore_db) if t.startswith("erasures/")] == []

    done = stack.agentctl("users", "erase", "user:carol", "--yes")
    assert done.returncode == 0, done.stderr
    assert "deleted for sub_" in done.stdout and "3 conversations" in done.stdout
    assert mentioning(await firestore_texts(firestore_db), traces) == []
    assert mentioning(await redis_texts(stack.redis_url), traces) == []
    again = stack.agentctl("users", "erase", "user:carol", "--yes", "--json")
    assert json.loads(again.stdout)["conversations"] == 0  # running it again is harmless


@pytest.mark.parametrize("subject", ["", "x" * 300, "user:\x1b[31malice", "user:\u202ealice"])
def test_agentctl_users_erase_refuses_subjects_that_name_nobody(
    stack: LocalStack, subject: str
) -> None:
    refused = stack.agentctl("users", "erase", subject, "--yes")
    assert refused.returncode == 1 and "subject must be" in refused.stderr


async def test_delete_me_needs_credentials_and_the_account_scope(
    stack: LocalStack, firestore_db: Any
) -> None:
    """Erasure is irreversible: an API key may do it only when given the ``account`` scope on
    purpose (keys do not get it by default); users' ID tokens carry it."""
    store = ApiKeyStore(firestore_db)
    ordinary, _ = await store.create("app", subject="user:dave")
    granted, _ = await store.create("settings screen", subject="user:dave", scopes=("account",))
    url = f"{stack.url('chat')}/v1/me"
    async with httpx.AsyncClient(timeout=30) as client:
        anonymous = await client.delete(url)
        refused = await client.delete(url, headers={"X-API-Key": ordinary})
        allowed = await client.delete(url, headers={"X-API-Key": granted})
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "unauthenticated"
    assert refused.status_code == 403 and "account" in refused.json()["error"]["message"]
    assert allowed.status_code == 200 and allowed.json()["api_keys"] == 2


def test_a_users_private_documents_are_erased_with_the_user(
    stack: LocalStack, tmp_path: Path
) -> None:
    from google.cloud import firestore as sync_firestore

    private = tmp_path / "diary.md"
    private.write_text("# Diary\n\nMy private notes about the blue drawer.")
    public = tmp_path / "public.md"
    public.write_text("# Public\n\nEverybody may read this article about drawers.")
    for path, visibility in ((private, "user:alice"), (public, "public")):
        done = stack.agentctl("corpus", "ingest", str(path), "--visibility", visibility)
        assert done.returncode == 0, done.stderr
    db = sync_firestore.Client(project=stack.settings.project_id)
    before = db.collection("config").document("corpus").get().to_dict() or {}

    response = httpx.delete(f"{stack.url('chat')}/v1/me", headers=stack.auth("alice"), timeout=30)
    assert response.status_code == 200, response.text
    assert response.json()["corpus_documents"] == 1
    left = [c.to_dict() or {} for c in db.collection("corpus_chunks").stream()]
    assert [c["visibility"] for c in left] == ["public"]
    assert [d.id for d in db.collection("corpus_documents").stream()] != []
    after = db.collection("config").document("corpus").get().to_dict() or {}
    assert after["version"] == before["version"] + 1
