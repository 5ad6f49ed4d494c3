"""Conversations and their messages in Firestore.

``conversations/{cid}`` holds the owner, title, counters and the rolling summary (bounded in size);
``conversations/{cid}/messages/{mid}`` holds one message each, so no document grows with the
conversation. An exchange (the user's message and the model's answer, plus the summary update) is
written in one batch, shared with other exchanges of the same moment (`group_commit`): all of it
lands or none of it does.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from shared import errors, telemetry
from shared.contracts import reserved
from shared.llm.prompt import Message
from shared.llm.types import LlmResult
from shared.stores import writes
from shared.stores.group_commit import GroupCommitter

CONVERSATIONS = "conversations"
MESSAGES = "messages"
TITLE_CHARS = 80
DELETE_BATCH = 400
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,80}\Z")


def new_id() -> str:
    """A time-ordered id (milliseconds, then randomness): newer ids sort after older ones."""
    return f"{int(time.time() * 1000):012x}{secrets.token_hex(6)}"


@dataclass(frozen=True)
class SummaryUpdate:
    """A new rolling summary covering every message up to ``through`` (a ``created_at``)."""

    text: str
    through: datetime


class ConversationStore:
    """Reads and writes conversations for one owner at a time."""

    def __init__(self, db: Any) -> None:
        self._db = db
        self._committer = GroupCommitter(db)

    def _conversation(self, conversation_id: str) -> Any:
        return self._db.collection(CONVERSATIONS).document(conversation_id)

    async def require_owned(self, conversation_id: str, owner: str) -> dict[str, Any]:
        """The conversation's data; someone else's conversation is reported as not found."""
        if not _TOKEN.match(conversation_id) or reserved(conversation_id):
            raise errors.NotFound(f"conversation {conversation_id[:80]} not found")
        snapshot = await self._conversation(conversation_id).get()
        data = snapshot.to_dict() if snapshot.exists else None
        if data is None or data.get("owner") != owner:
            raise errors.NotFound(f"conversation {conversation_id} not found")
        return dict(data)

    async def history(
        self, conversation_id: str, limit: int, after: datetime | None = None
    ) -> list[Message]:
        """Up to ``limit`` newest messages created after ``after``, oldest first."""
        if limit <= 0:
            return []
        query = self._conversation(conversation_id).collection(MESSAGES)
        if after is not None:
            query = query.where(filter=_field_filter("created_at", ">", after))
        query = query.order_by("created_at", direction="DESCENDING").limit(limit)
        messages = [
            Message(
                id=doc.id,
                # A person's reply during a hand-off is, to the model, a reply of this side.
                role="model" if doc.get("role") == "operator" else doc.get("role"),
                text=doc.get("text")
                if doc.get("role") != "operator"
                else f"(a person from support replied) {doc.get('text')}",
                tokens=(doc.to_dict() or {}).get("output_tokens"),
                created_at=doc.get("created_at"),
            )
            async for doc in query.stream()
        ]
        messages.reverse()
        return messages

    async def list_page(
        self, owner: str, page_size: int, page_token: str | None
    ) -> tuple[list[tuple[str, dict[str, Any]]], str | None]:
        """One page of the owner's conversations, most recently updated first."""
        query = (
            self._db.collection(CONVERSATIONS)
            .where(filter=_field_filter("owner", "==", owner))
            .order_by("updated_at", direction="DESCENDING")
        )
        return await _page(
            query, page_size, page_token, self._db.collection(CONVERSATIONS), owner=owner
        )

    async def messages_page(
        self, conversation_id: str, page_size: int, page_token: str | None
    ) -> tuple[list[tuple[str, dict[str, Any]]], str | None]:
        """One page of a conversation's messages, newest first."""
        messages = self._conversation(conversation_id).collection(MESSAGES)
        query = messages.order_by("created_at", direction="DESCENDING")
        return await _page(query, page_size, page_token, messages)

    async def rate(
        self, conversation_id: str, message_id: str, owner: str, feedback: dict[str, Any]
    ) -> datetime:
        """Keep ``feedback`` on one of the owner's answers (the last one wins); when it was kept.

        Someone else's conversation, or a message not in it, is not found; a user's own message
        cannot be rated."""
        await self.require_owned(conversation_id, owner)
        if not _TOKEN.match(message_id) or reserved(message_id):
            raise errors.NotFound(f"message {message_id[:80]} not found")
        reference = self._conversation(conversation_id).collection(MESSAGES).document(message_id)
        snapshot = await reference.get()
        if not snapshot.exists:
            raise errors.NotFound(f"message {message_id} not found")
        if snapshot.get("role") != "model":
            raise errors.ValidationFailed(
                "only an answer can be rated",
                details=[{"field": "message_id", "issue": "is the user's own message"}],
            )
        now = datetime.now(UTC)
        # The conversation keeps each answer's rating too: a day's business metrics read
        # conversations only (`shared.business`).
        from shared.business import score

        batch = self._db.batch()
        batch.update(reference, {"feedback": {**feedback, "updated_at": now}})
        batch.set(
            self._conversation(conversation_id),
            {"ratings": {message_id: score(feedback)}},
            merge=True,
        )
        await batch.commit()
        return now

    async def delete(self, conversation_id: str, owner: str) -> int:
        """Delete a conversation and every message in it; returns how many messages went.

        Messages go first, in batches, and the conversation document last: an interrupted
        delete leaves a conversation that the same request can finish deleting.
        """
        await self.require_owned(conversation_id, owner)
        messages = self._conversation(conversation_id).collection(MESSAGES)
        deleted = 0
        while True:
            docs = [doc async for doc in messages.limit(DELETE_BATCH).stream()]
            if not docs:
                break
            batch = self._db.batch()
            for doc in docs:
                batch.delete(doc.reference)
            await batch.commit()
            deleted += len(docs)
        await self._conversation(conversation_id).delete()
        return deleted

    async def append_exchange(
        self,
        *,
        owner: str,
        conversation_id: str,
        new_conversation: bool,
        message_id: str,
        user_text: str | None,
        answer: LlmResult,
        request_id: str,
        summary: SummaryUpdate | None = None,
        retention_days: int | None = None,
        also: Sequence[Any] = (),
        tool_calls: Sequence[dict[str, Any]] = (),
        sources: Sequence[dict[str, Any]] = (),
        conversation_fields: Mapping[str, Any] | None = None,
    ) -> None:
        """Store the user's message and the answer (with the tools it called) atomically,
        creating the conversation if new (``conversation_fields``: more to set on it).

        The answer is stored as ``message_id`` and the question beside it as ``{message_id}-q``,
        so ids can be handed to the client before the model has answered. Without ``user_text``
        the answer alone is added (an agent going on after the user confirmed an action).
        ``also``: further ``Write`` protos that must land in the same commit (the sealed
        idempotent answer).
        """
        now = datetime.now(UTC)
        conversation = self._conversation(conversation_id)
        header: dict[str, Any] = {"owner": owner, "updated_at": now}
        if new_conversation:
            title = (user_text or "").strip()[:TITLE_CHARS]
            header |= {"created_at": now, "title": title, "summary": ""}
        if summary is not None:
            header |= {"summary": summary.text, "summary_through": summary.through}
        header |= dict(conversation_fields or {})
        messages = conversation.collection(MESSAGES)
        # Each message names its owner (migration 0001 backfilled older ones): a user's messages
        # are found with one collection-group query, for erasure and export.
        question = {
            "role": "user",
            "owner": owner,
            "text": user_text,
            "created_at": now,
            "request_id": request_id,
        }
        reply: dict[str, Any] = {
            "role": "model",
            "owner": owner,
            "text": answer.text,
            "created_at": now + timedelta(microseconds=1),
            "model": answer.model,
            "finish_reason": answer.finish_reason,
            "input_tokens": answer.input_tokens,
            "output_tokens": answer.output_tokens,
            "cached": answer.cached,
            "request_id": request_id,
        }
        if tool_calls:
            reply["tool_calls"] = list(tool_calls)
        if sources:
            reply["sources"] = list(sources)
        if retention_days:
            # Firestore TTL deletes documents one by one, never a subcollection with its parent:
            # each message carries its own expiry so none outlives the retention period.
            expire_at = now + timedelta(days=retention_days)
            header["expire_at"] = question["expire_at"] = reply["expire_at"] = expire_at

        # Built here, in the request's own task, not in the shared commit. The messages are new
        # documents (fresh ids) and are *created*: should a commit land and its reply be lost, no
        # later attempt can store the exchange again or count its messages twice.
        asked = user_text is not None
        pbs = [
            writes.merge_write(
                conversation._document_path, header, {"message_count": 2 if asked else 1}
            ),
            *(
                [writes.create_write(messages.document(f"{message_id}-q")._document_path, question)]
                if asked
                else []
            ),
            writes.create_write(messages.document(message_id)._document_path, reply),
            *also,
        ]

        def write(batch: Any) -> None:
            batch._add_write_pbs(pbs)  # where batch.set puts the protos it builds

        with telemetry.span("firestore.commit", writes=len(pbs)):
            await self._committer.commit(write, count=len(pbs))


def _field_filter(field: str, op: str, value: Any) -> Any:
    from google.cloud.firestore_v1.base_query import FieldFilter

    return FieldFilter(field, op, value)


async def _page(
    query: Any, page_size: int, page_token: str | None, parent: Any, owner: str | None = None
) -> tuple[list[tuple[str, dict[str, Any]]], str | None]:
    """A page of ``query`` and the token of the next one (the last document's id).

    With ``owner``, a token naming someone else's document is refused exactly like one naming no
    document: the answer tells nothing about what exists.
    """
    if page_token:
        if not _TOKEN.match(page_token) or reserved(page_token):
            raise errors.ValidationFailed(
                "page_token is not valid", details=[{"field": "page_token", "issue": "malformed"}]
            )
        cursor = await parent.document(page_token).get()
        foreign = owner is not None and (cursor.to_dict() or {}).get("owner") != owner
        if not cursor.exists or foreign:
            raise errors.ValidationFailed(
                "page_token is no longer valid",
                details=[{"field": "page_token", "issue": "expired"}],
            )
        query = query.start_after(cursor)
    docs = [doc async for doc in query.limit(page_size + 1).stream()]
    items = [(doc.id, doc.to_dict() or {}) for doc in docs[:page_size]]
    next_token = items[-1][0] if len(docs) > page_size else None
    return items, next_token
