"""Heavy work on a queue, end to end through the Pub/Sub emulator: POST /v1/me/export queues a
job, the push stand-in delivers it to the worker, the archive holds the caller's data and
nothing of anyone else's, redeliveries leave one archive, a job that keeps failing is
dead-lettered, and an open session hears when a job ends."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest

from emulator import devtokens
from emulator.pubsub_push import names
from shared.auth.apikeys import ApiKeyStore
from tests.conftest import LocalStack
from tests.integration.session_client import open_session, receive, send, until

OWNER_FIELDS = ("owner", "subject")


async def seed(stack: LocalStack, firestore_db: Any, user: str) -> str:
    """Conversations with feedback, an API key and an idempotency record for ``user``."""
    headers = stack.auth(user)
    async with httpx.AsyncClient(timeout=30) as client:
        chat = f"{stack.url('chat')}/v1/chat"
        first = (
            await client.post(chat, json={"message": f"hello from {user}"}, headers=headers)
        ).json()
        await client.post(
            chat,
            json={"message": "and again", "conversation_id": first["conversation_id"]},
            headers={**headers, "Idempotency-Key": f"key-{user}"},
        )
        rated = await client.post(
            f"{stack.url('chat')}/v1/conversations/{first['conversation_id']}/messages/"
            f"{first['message_id']}/feedback",
            json={"thumbs": "up", "comment": f"thanks, {user}"},
            headers=headers,
        )
        assert rated.status_code == 200, rated.text
    await ApiKeyStore(firestore_db).create(f"{user} phone", subject=f"user:{user}")
    return str(first["conversation_id"])


async def owned_paths(firestore_db: Any, subject: str) -> set[str]:
    """Every document path in Firestore naming ``subject`` as its owner (a full walk)."""
    found: set[str] = set()

    async def walk(collection: Any) -> None:
        async for snapshot in collection.stream():
            data = snapshot.to_dict() or {}
            if any(data.get(f) == subject for f in OWNER_FIELDS):
                found.add(snapshot.reference.path)
            async for child in snapshot.reference.collections():
                await walk(child)

    async for collection in firestore_db.collections():
        await walk(collection)
    return found


async def wait_for_job(stack: LocalStack, job_id: str, user: str = "alice") -> dict[str, Any]:
    deadline = time.monotonic() + 30
    async with httpx.AsyncClient(timeout=10) as client:
        while True:
            response = await client.get(
                f"{stack.url('chat')}/v1/jobs/{job_id}", headers=stack.auth(user)
            )
            assert response.status_code == 200, response.text
            job: dict[str, Any] = response.json()
            if job["status"] in ("succeeded", "failed") or time.monotonic() > deadline:
                return job
            await asyncio.sleep(0.1)


def push_token(stack: LocalStack) -> str:
    """An OIDC token of the push identity for the worker, as Pub/Sub signs its pushes."""
    account = devtokens.push_account(stack.settings)
    return devtokens.mint(
        devtokens.ensure_key(devtokens.key_dir(stack.settings)),
        user=account,
        issuer=devtokens.issuer(stack.settings),
        audience=stack.url("worker"),
        ttl_s=600,
        email=account,
        email_verified=True,
    )


def exports_dir(stack: LocalStack) -> Path:
    return stack.settings.stack_dir / "exports"


async def test_an_export_holds_all_of_the_callers_data_and_nothing_of_anyone_elses(
    stack: LocalStack, firestore_db: Any
) -> None:
    await seed(stack, firestore_db, "alice")
    await seed(stack, firestore_db, "bob")
    async with httpx.AsyncClient(timeout=30) as client:
        asked = await client.post(f"{stack.url('chat')}/v1/me/export", headers=stack.auth())
        assert asked.status_code == 202, asked.text
        job_id = asked.json()["job_id"]
        assert asked.headers["location"] == f"/v1/jobs/{job_id}"
        again = await client.post(f"{stack.url('chat')}/v1/me/export", headers=stack.auth())
        assert again.status_code in (200, 202)
        if again.status_code == 200:  # still queued or running: the same job
            assert again.json()["job_id"] == job_id
        bob_reads = await client.get(
            f"{stack.url('chat')}/v1/jobs/{job_id}", headers=stack.auth("bob")
        )
        assert bob_reads.status_code == 404
    job = await wait_for_job(stack, job_id)
    assert job["status"] == "succeeded", job
    url = job["download_url"]
    assert url.startswith("file://")
    archive = json.loads(Path(urlparse(url).path).read_text())
    exported = {
        item["path"]
        for items in archive["collections"].values()
        for item in items
        if "path" in item
    }
    keys = archive["collections"]["api_keys"]
    everything = await owned_paths(firestore_db, "user:alice")
    # Everything of alice's is in the archive (API keys by content: their ids are key hashes).
    key_paths = {p for p in everything if p.startswith("api_keys/")}
    assert everything - key_paths <= exported
    assert len(keys) == len(key_paths) == 1 and "hash" not in json.dumps(keys)
    assert exported <= everything  # and nothing that is not alice's
    text = json.dumps(archive)
    assert "hello from alice" in text and "bob" not in text
    assert archive["collections"]["messages"] and archive["collections"]["conversations"]
    assert any(m["data"].get("feedback") for m in archive["collections"]["messages"]), (
        "feedback travels with its message"
    )


async def test_a_job_redelivered_twice_makes_one_archive(
    stack: LocalStack, firestore_db: Any
) -> None:
    await seed(stack, firestore_db, "alice")
    async with httpx.AsyncClient(timeout=30) as client:
        asked = await client.post(f"{stack.url('chat')}/v1/me/export", headers=stack.auth())
        job_id = asked.json()["job_id"]
        first = await wait_for_job(stack, job_id)
        assert first["status"] == "succeeded"
        archive = Path(urlparse(first["download_url"]).path)
        written = archive.stat().st_mtime_ns
        before = sorted(p.name for p in archive.parent.iterdir())
        # The same message pushed again, twice at once, as Pub/Sub may deliver it.
        worker = stack.url("worker")
        token = push_token(stack)
        data = base64.b64encode(json.dumps({"job_id": job_id, "kind": "export"}).encode())
        envelope = {
            "message": {"data": data.decode(), "messageId": "redelivered-1"},
            "subscription": names(stack.settings.project_id, "ngx-jobs")["subscription"],
            "deliveryAttempt": 2,
        }
        answers = await asyncio.gather(
            *(
                client.post(worker, json=envelope, headers={"Authorization": f"Bearer {token}"})
                for _ in range(2)
            )
        )
    assert [a.status_code for a in answers] == [200, 200]
    assert {a.json()["status"] for a in answers} == {"already_finished"}
    assert sorted(p.name for p in archive.parent.iterdir()) == before  # no second archive
    assert archive.stat().st_mtime_ns == written
    after = await wait_for_job(stack, job_id)
    assert after["attempts"] == 1


async def test_an_open_session_hears_that_its_export_is_done(
    stack: LocalStack, firestore_db: Any
) -> None:
    await seed(stack, firestore_db, "alice")
    async with open_session(stack.url("stream"), stack.token()) as ws:
        await receive(ws)
        async with httpx.AsyncClient(timeout=30) as client:
            asked = await client.post(f"{stack.url('chat')}/v1/me/export", headers=stack.auth())
        job_id = asked.json()["job_id"]
        events = await until(ws, "job", timeout=30)
        assert events[-1]["data"]["job_id"] == job_id
        assert events[-1]["data"]["status"] == "succeeded"
        await send(ws, {"type": "ping"})
        assert (await receive(ws))["type"] == "pong"


async def test_a_job_that_keeps_failing_is_dead_lettered_and_marked_failed(
    stack: LocalStack, firestore_db: Any
) -> None:
    await seed(stack, firestore_db, "alice")
    blocker = exports_dir(stack)
    if blocker.exists():
        import shutil

        shutil.rmtree(blocker)
    blocker.write_text("a file where the exports folder should be: every write fails")
    try:
        async with httpx.AsyncClient(timeout=30) as client:
            asked = await client.post(f"{stack.url('chat')}/v1/me/export", headers=stack.auth())
        job_id = asked.json()["job_id"]
        deadline = time.monotonic() + 60
        while True:
            job = await wait_for_job(stack, job_id)
            if job["status"] == "failed" or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
    finally:
        blocker.unlink()
    assert job["status"] == "failed" and job["attempts"] == 5, job
    assert job["error"]
    dead = names(stack.settings.project_id, "ngx-jobs")["dead_subscription"]
    emulator = f"http://127.0.0.1:{stack.settings.stack_pubsub_port}/v1/{dead}"
    found: list[dict[str, Any]] = []
    async with httpx.AsyncClient(timeout=10) as client:
        for _ in range(50):
            pulled = (await client.post(f"{emulator}:pull", json={"maxMessages": 10})).json()
            for item in pulled.get("receivedMessages", []):
                await client.post(f"{emulator}:acknowledge", json={"ackIds": [item["ackId"]]})
                found.append(json.loads(base64.b64decode(item["message"]["data"])))
            if any(f["job_id"] == job_id for f in found):
                break
            await asyncio.sleep(0.2)
    assert {"job_id": job_id, "kind": "export"} in found


def _message(data: bytes, **extra: Any) -> str:
    payload = {"messageId": "1", "data": base64.b64encode(data).decode()}
    return json.dumps({"message": payload, **extra})


@pytest.mark.parametrize(
    "body",
    [
        "{}",
        '{"message": "x"}',
        '{"message": {"messageId": "1", "data": "not base64!"}}',
        _message(b"[1]"),
        _message(b'{"job_id": "../x", "kind": "export"}'),
        _message(b'{"job_id": "__job__", "kind": "export"}'),
        _message(b'{"job_id": "job_aaaaaaaaaaaaaaaaaaaa", "kind": "rm -rf"}'),
        _message(b'{"job_id": "job_aaaaaaaaaaaaaaaaaaaa\\n", "kind": "export"}'),
        _message(b'{"job_id": "job_aaaaaaaaaaaaaaaaaaaa", "kind": "export"}')[:-1]
        + ', "deliveryAttempt": 1e400}',
        _message(b"[" * 5000 + b"]" * 5000),
    ],
)
async def test_bad_push_messages_are_refused_naming_the_field(stack: LocalStack, body: str) -> None:
    worker = stack.url("worker")
    json_type = {"Content-Type": "application/json"}
    async with httpx.AsyncClient(timeout=10) as client:
        signed = {"Authorization": f"Bearer {push_token(stack)}", **json_type}
        response = await client.post(worker, content=body, headers=signed)
        assert response.status_code == 422, response.text
        assert response.json()["error"]["details"][0]["field"]
        unsigned = await client.post(worker, content=body, headers=json_type)
        assert unsigned.status_code == 401
        user = await client.post(worker, content=body, headers={**stack.auth(), **json_type})
        assert user.status_code == 401


async def test_a_message_for_a_job_that_is_gone_is_acknowledged(stack: LocalStack) -> None:
    worker = stack.url("worker")
    token = push_token(stack)
    data = base64.b64encode(b'{"job_id": "job_aaaaaaaaaaaaaaaaaaaa", "kind": "export"}').decode()
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.post(
            worker,
            json={"message": {"messageId": "9", "data": data}},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert response.status_code == 200 and response.json()["status"] == "skipped"


async def test_erasing_the_user_deletes_their_export_archives(
    stack: LocalStack, firestore_db: Any
) -> None:
    await seed(stack, firestore_db, "alice")
    async with httpx.AsyncClient(timeout=30) as client:
        asked = await client.post(f"{stack.url('chat')}/v1/me/export", headers=stack.auth())
        job = await wait_for_job(stack, asked.json()["job_id"])
        archive = Path(urlparse(job["download_url"]).path)
        assert archive.exists()
        erased = await client.delete(f"{stack.url('chat')}/v1/me", headers=stack.auth())
    assert erased.status_code == 200, erased.text
    assert erased.json()["exports"] >= 1 and erased.json()["jobs"] >= 1
    assert not archive.exists()


async def test_a_large_upload_is_ingested_by_the_worker_as_a_job(
    stack: LocalStack, firestore_db: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from google.cloud import storage  # type: ignore[attr-defined]
    from google.cloud.firestore_v1.base_query import FieldFilter

    from emulator.stack import CORPUS_BUCKET
    from shared.retrieval.corpus import DOCUMENTS, document_id

    monkeypatch.setenv(
        "STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{stack.settings.stack_storage_port}"
    )
    bucket = storage.Client(project=stack.settings.project_id).bucket(CORPUS_BUCKET)
    paragraphs = [
        f"## Part {n}\n\nThe quiet hours feature mutes reminder number {n} at night." * 3
        for n in range(200)
    ]
    text = "# A long handbook\n\n" + "\n\n".join(paragraphs)
    assert len(text.encode()) > stack.settings.ingest_inline_max_bytes  # above the inline limit
    blob = bucket.blob("handbook/long.md")
    blob.upload_from_string(text, content_type="text/markdown")
    try:
        uri = f"gs://{CORPUS_BUCKET}/handbook/long.md"
        deadline = time.monotonic() + 60
        found: dict[str, Any] | None = None
        while time.monotonic() < deadline and not found:
            snapshot = await firestore_db.collection(DOCUMENTS).document(document_id(uri)).get()
            found = snapshot.to_dict() if snapshot.exists else None
            await asyncio.sleep(0.3)
        assert found is not None and not found.get("removed"), "the worker did not ingest it"
        jobs = [
            s.to_dict()
            async for s in firestore_db.collection("jobs")
            .where(filter=FieldFilter("kind", "==", "ingest"))
            .stream()
        ]
        assert [j["status"] for j in jobs] == ["succeeded"]
        assert jobs[0]["result"]["outcome"] == "added" and jobs[0]["result"]["chunks"] > 10
        assert jobs[0]["owner"] == "system:ingest"
    finally:
        blob.delete()
