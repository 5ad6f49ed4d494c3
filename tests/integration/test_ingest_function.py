"""The ingest function on the stack: uploads to the corpus bucket (the storage emulator) reach it as
Eventarc would deliver them (the stack's stand-in trigger), so a document appears, is replaced by
an overwrite — whose deletion of the old generation, arriving after, removes nothing — and goes
with its object; `agentctl corpus ingest gs://…` does the same from a terminal. Events are checked
before anything is read: the trigger's identity only, known buckets, sane object names."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from emulator import devtokens
from emulator.stack import CORPUS_BUCKET
from shared.retrieval.corpus import DOCUMENTS, document_id
from tests.conftest import LocalStack

ARTICLE = b"# Quiet hours\n\nQuiet hours mute every reminder between ten at night and seven."


@pytest.fixture
def bucket(stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The stack's corpus bucket through the real storage client, emptied afterwards."""
    from google.cloud import storage  # type: ignore[attr-defined]

    monkeypatch.setenv("STORAGE_EMULATOR_HOST", storage_url(stack))
    handle = storage.Client(project=stack.settings.project_id).bucket(CORPUS_BUCKET)
    yield handle
    for blob in list(handle.list_blobs()):
        blob.delete()


def storage_url(stack: LocalStack) -> str:
    return f"http://127.0.0.1:{stack.settings.stack_storage_port}"


def ingest_url(stack: LocalStack) -> str:
    return stack.url("ingest")


def record(firestore_db: Any, uri: str) -> dict[str, Any] | None:
    from google.cloud import firestore

    db = firestore.Client(project=firestore_db.project)
    snapshot = db.collection(DOCUMENTS).document(document_id(uri)).get()
    found = snapshot.to_dict() if snapshot.exists else None
    return None if found is None or found.get("removed") else found  # a tombstone: gone


def wait_for(check: Any, timeout_s: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, "the event did not arrive in time"
        time.sleep(0.1)


def test_uploads_are_ingested_replaced_and_removed(
    stack: LocalStack, bucket: Any, firestore_db: Any
) -> None:
    uri = f"gs://{CORPUS_BUCKET}/help/quiet-hours.md"
    blob = bucket.blob("help/quiet-hours.md")
    blob.metadata = {"visibility": "tenant:acme", "tags": "reminders,settings"}
    blob.upload_from_string(ARTICLE, content_type="text/markdown")
    first = wait_for(lambda: record(firestore_db, uri))
    assert first["title"] == "Quiet hours" and first["visibility"] == "tenant:acme"
    assert first["tags"] == ["reminders", "settings"] and first["chunks"] == 1
    generation = first["generation"]

    blob = bucket.blob("help/quiet-hours.md")
    blob.upload_from_string(ARTICLE.replace(b"seven", b"eight"), content_type="text/markdown")
    replaced = wait_for(
        lambda: (r := record(firestore_db, uri)) and r["generation"] > generation and r
    )
    time.sleep(1.0)  # the old generation's deletion arrives after the new one: it removes nothing
    assert record(firestore_db, uri) == replaced

    bucket.blob("help/quiet-hours.md").delete()
    wait_for(lambda: record(firestore_db, uri) is None)


def test_agentctl_ingests_a_bucket_prefix(
    stack: LocalStack, bucket: Any, firestore_db: Any
) -> None:
    for name in ("guides/a.md", "guides/b.txt", "guides/bad.exe"):
        blob = bucket.blob(name)
        blob.metadata = {"visibility": "public"}
        blob.upload_from_string(ARTICLE + name.encode(), content_type="text/plain")
    time.sleep(1.0)  # the stand-in trigger ingests them too; the CLI then finds them unchanged
    done = stack.agentctl("corpus", "ingest", f"gs://{CORPUS_BUCKET}/guides/", "--json")
    report = json.loads(done.stdout)
    assert done.returncode == 1  # one object was skipped
    assert report["added"] + report["unchanged"] == 2
    assert [uri for uri, _ in report["failed"]] == [f"gs://{CORPUS_BUCKET}/guides/bad.exe"]
    assert record(firestore_db, f"gs://{CORPUS_BUCKET}/guides/b.txt") is not None


def event(kind: str = "finalized", **resource: Any) -> tuple[dict[str, str], dict[str, Any]]:
    headers = {
        "content-type": "application/json",
        "ce-specversion": "1.0",
        "ce-type": f"google.cloud.storage.object.v1.{kind}",
        "ce-id": "1",
        "ce-source": f"//storage.googleapis.com/projects/_/buckets/{CORPUS_BUCKET}",
    }
    body = {"bucket": CORPUS_BUCKET, "name": "x.md", "generation": "1", **resource}
    return headers, body


def post(
    stack: LocalStack, headers: dict[str, str], body: Any, email: str | None = "events"
) -> httpx.Response:
    if email is not None:
        account = devtokens.event_account(stack.settings) if email == "events" else email
        token = devtokens.invoker_token(stack.settings, account, ingest_url(stack))
        headers = {**headers, "authorization": f"Bearer {token}"}
    return httpx.post(ingest_url(stack), json=body, headers=headers, timeout=30)


@pytest.mark.parametrize(
    ("resource", "status", "field"),
    [
        ({"bucket": "someone-elses-bucket"}, 403, None),
        ({"name": "../../etc/passwd.md"}, 422, "object.name"),
        ({"name": "/abs.md"}, 422, "object.name"),
        ({"name": "a//b.md"}, 422, "object.name"),
        ({"name": "bell\x07.md"}, 422, "object.name"),
        ({"name": "x" * 1100 + ".md"}, 422, "object.name"),
        ({"name": ""}, 422, "object.name"),
        ({"generation": "0"}, 422, "object.generation"),
        ({"generation": "9" * 40}, 422, "object.generation"),
        ({"generation": "not a number"}, 422, "object.generation"),
        ({"metadata": {"k": {"deep": ["nested"]}}}, 422, "object.metadata.k"),
    ],
)
def test_hostile_events_are_refused_before_anything_is_read(
    stack: LocalStack, resource: dict[str, Any], status: int, field: str | None
) -> None:
    headers, body = event(**resource)
    response = post(stack, headers, body)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    if field is not None:
        assert any(d["field"].startswith(field) for d in error["details"]), error


def test_only_the_triggers_identity_may_deliver(stack: LocalStack) -> None:
    headers, body = event()
    assert post(stack, headers, body, email=None).status_code == 401
    scheduler = devtokens.scheduler_account(stack.settings)
    assert post(stack, headers, body, email=scheduler).status_code == 403
    assert (
        post(
            stack, {**headers, "ce-type": "google.cloud.pubsub.topic.v1.messagePublished"}, body
        ).status_code
        == 422
    )
    wrong = devtokens.invoker_token(
        stack.settings, devtokens.event_account(stack.settings), "https://elsewhere.example"
    )
    response = httpx.post(
        ingest_url(stack), json=body, headers={**headers, "authorization": f"Bearer {wrong}"}
    )
    assert response.status_code == 401


def test_a_file_that_cannot_be_ingested_is_acknowledged_and_reported(
    stack: LocalStack, bucket: Any
) -> None:
    cases = {
        "binary.md": (b"\x00\x01\x02 not text", {}),
        "bad-visibility.md": (ARTICLE, {"visibility": "everyone"}),
        "bad-expiry.md": (ARTICLE, {"expires_at": "next tuesday"}),
        "program.exe": (ARTICLE, {}),
    }
    for name, (data, metadata) in cases.items():
        blob = bucket.blob(f"direct/{name}")
        blob.upload_from_string(data)
        headers, body = event(
            name=f"direct/{name}",
            generation=str(bucket.get_blob(f"direct/{name}").generation),
            metadata=metadata,
        )
        response = post(stack, headers, body)
        assert response.status_code == 200, response.text
        assert response.json()["outcome"] == "skipped", (name, response.json())


def test_an_event_for_an_older_generation_changes_nothing(
    stack: LocalStack, bucket: Any, firestore_db: Any
) -> None:
    blob = bucket.blob("direct/versions.md")
    blob.upload_from_string(ARTICLE)
    uri = f"gs://{CORPUS_BUCKET}/direct/versions.md"
    stored = wait_for(lambda: record(firestore_db, uri))
    headers, body = event(name="direct/versions.md", generation=str(stored["generation"] - 1))
    response = post(stack, headers, body)
    assert response.json()["outcome"] == "stale", response.json()
    headers, body = event(
        "deleted", name="direct/versions.md", generation=str(stored["generation"] - 1)
    )
    assert post(stack, headers, body).json()["outcome"] == "stale"
    assert record(firestore_db, uri) == stored


def test_the_same_bytes_uploaded_again_survive_the_old_generations_archiving(
    stack: LocalStack, bucket: Any, firestore_db: Any
) -> None:
    """Unchanged content costs nothing, but the record takes the new generation: the archived
    event of the generation it replaced, arriving after, must not remove the document."""
    uri = f"gs://{CORPUS_BUCKET}/again/same.md"
    bucket.blob("again/same.md").upload_from_string(ARTICLE)
    first = wait_for(lambda: record(firestore_db, uri))
    bucket.blob("again/same.md").upload_from_string(ARTICLE)  # a new generation, same bytes
    second = wait_for(
        lambda: (r := record(firestore_db, uri)) and r["generation"] > first["generation"] and r
    )
    time.sleep(1.0)  # the archived event of the first generation has come and gone
    assert record(firestore_db, uri) == second
    assert second["content_hash"] == first["content_hash"]


def test_changed_metadata_is_applied(stack: LocalStack, bucket: Any, firestore_db: Any) -> None:
    uri = f"gs://{CORPUS_BUCKET}/meta/notes.md"
    blob = bucket.blob("meta/notes.md")
    blob.metadata = {"visibility": "public"}
    blob.upload_from_string(ARTICLE)
    wait_for(lambda: (r := record(firestore_db, uri)) and r["visibility"] == "public")
    blob = bucket.get_blob("meta/notes.md")
    blob.metadata = {"visibility": "user:alice"}
    blob.patch()  # same generation, new metadata: a metadataUpdated event
    private = wait_for(
        lambda: (r := record(firestore_db, uri)) and r["visibility"] == "user:alice" and r
    )
    assert private["owner"] == "user:alice"


def test_eventarcs_own_url_is_accepted_from_its_identity_only(stack: LocalStack) -> None:
    """On Cloud Run a trigger signs for the service's hash-style URL; only Eventarc's identity
    may use it, every other caller signs for the configured URL."""
    from tests.conftest import start_function

    configured = "https://ngx-ingest-123456.us-central1.run.app"
    url, process = start_function(
        stack.settings, "ingest", K_SERVICE="ngx-ingest", NGX_INVOKER_AUDIENCE=configured
    )
    hashed = "https://ngx-ingest-abc123xyz-uc.a.run.app"
    headers, body = event(bucket="not-ours")  # 403 once the caller is admitted
    try:
        for account, audience, status in [
            (devtokens.event_account(stack.settings), hashed, 403),
            (devtokens.event_account(stack.settings), configured, 403),
            (devtokens.operator_account(stack.settings), configured, 403),
            (devtokens.operator_account(stack.settings), hashed, 401),
            (
                devtokens.event_account(stack.settings),
                "https://ngx-ingest-abc-uc.a.run.app.evil",
                401,
            ),
            (
                devtokens.event_account(stack.settings),
                "https://ngx-backup-abc123-uc.a.run.app",
                401,
            ),
        ]:
            token = devtokens.invoker_token(stack.settings, account, audience)
            answer = httpx.post(
                url, json=body, headers={**headers, "authorization": f"Bearer {token}"}, timeout=30
            )
            assert answer.status_code == status, (account, audience, answer.text)
    finally:
        process.terminate()
        process.wait(10)


def test_a_late_event_never_brings_a_removed_document_back(
    stack: LocalStack, bucket: Any, firestore_db: Any
) -> None:
    """The bucket keeps versions, so a removed generation can still be read: a finalize of it
    retried after its archiving finds a tombstone and changes nothing."""
    uri = f"gs://{CORPUS_BUCKET}/late/gone.md"
    bucket.blob("late/gone.md").upload_from_string(ARTICLE)
    stored = wait_for(lambda: record(firestore_db, uri))
    bucket.blob("late/gone.md").delete()
    wait_for(lambda: record(firestore_db, uri) is None)
    headers, body = event(name="late/gone.md", generation=str(stored["generation"]))
    assert post(stack, headers, body).json()["outcome"] == "stale"
    assert record(firestore_db, uri) is None
    bucket.blob("late/gone.md").upload_from_string(ARTICLE)  # a new generation: welcome back
    wait_for(lambda: record(firestore_db, uri))
