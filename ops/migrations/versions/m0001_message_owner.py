"""0001: every message names its owner, as new messages do since this release.

A user's messages are then found with one collection-group query (``owner == subject``), which
erasure and export need; before, only the parent conversation carried the owner. Idempotent: a
message whose owner is already right is left alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ops.migrations.runner import Step

CONVERSATIONS, MESSAGES = "conversations", "messages"
PAGE = 50  # conversations read per step


@dataclass(frozen=True)
class MessageOwner:
    number: int = 1
    name: str = "message_owner"
    description: str = "copy each conversation's owner onto its messages"

    async def step(self, db: Any, cursor: str | None, limit: int) -> Step:
        """Conversations from ``cursor`` on (``at:ID`` includes it, ``after:ID`` does not)."""
        from google.cloud.firestore_v1.base_query import FieldFilter

        conversations = db.collection(CONVERSATIONS)
        query = conversations.order_by("__name__").limit(PAGE)
        if cursor:
            kind, _, conversation_id = cursor.partition(":")
            op = ">=" if kind == "at" else ">"
            ref = conversations.document(conversation_id)
            query = query.where(filter=FieldFilter("__name__", op, ref))
        updates: dict[str, dict[str, Any]] = {}
        read: list[str] = []
        async for conversation in query.stream():
            owner = (conversation.to_dict() or {}).get("owner")
            async for message in conversation.reference.collection(MESSAGES).stream():
                if owner and (message.to_dict() or {}).get("owner") != owner:
                    if len(updates) == limit:  # full: finish this conversation next step
                        return Step(updates, f"at:{conversation.id}")
                    updates[message.reference.path] = {"owner": owner}
            read.append(conversation.id)
        # A short page was the last one.
        return Step(updates, f"after:{read[-1]}" if len(read) == PAGE else None)


MIGRATION = MessageOwner()
