"""Where a subject's documents are in Firestore: one list for erasure and for export, so what a
user can download is exactly what erasing them deletes.

- ``conversations`` (``owner``) and their ``messages`` (``owner``; every message of the subject's
  conversations too); summaries and feedback live on them;
- idempotency records, API keys (``subject``), proposed actions awaiting approval, private
  retrieval documents and their chunks, jobs.
"""

from __future__ import annotations

from typing import Any

# Firestore collections holding a subject's documents, and the field naming it.
OWNED_COLLECTIONS = (
    ("idempotency", "owner"),
    ("api_keys", "subject"),
    ("confirmations", "owner"),
    ("corpus_documents", "owner"),
    ("corpus_chunks", "owner"),
    ("jobs", "owner"),
)


def _filter(field: str, value: str) -> Any:
    from google.cloud.firestore_v1.base_query import FieldFilter

    return FieldFilter(field, "==", value)


async def refs(source: Any, field: str, subject: str) -> list[Any]:
    """References of the documents of ``source`` whose ``field`` is ``subject``."""
    query = source.where(filter=_filter(field, subject)).select([])
    return [snapshot.reference async for snapshot in query.stream()]


async def messages(db: Any, subject: str, conversations: list[Any]) -> list[Any]:
    """The subject's messages: by owner anywhere, and every message of its conversations."""
    found = await refs(db.collection_group("messages"), "owner", subject)
    for conversation in conversations:
        query = conversation.collection("messages").select([])
        found += [snapshot.reference async for snapshot in query.stream()]
    return list({ref.path: ref for ref in found}.values())


async def owned(db: Any, subject: str) -> dict[str, list[Any]]:
    """Every document reference of the subject, by collection (messages under ``messages``)."""
    conversations = await refs(db.collection("conversations"), "owner", subject)
    found = {
        "conversations": conversations,
        "messages": await messages(db, subject, conversations),
    }
    for name, field in OWNED_COLLECTIONS:
        found[name] = await refs(db.collection(name), field, subject)
    return found
