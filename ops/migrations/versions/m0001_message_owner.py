"""0001: every message names its owner, as new messages do since this release.

A user's messages are then found with one collection-group query (``owner == subject``, index in
infra/modules/firestore), which erasure and export need; before, only the parent conversation
carried the owner. Idempotent: a message whose owner is already right is left alone. The release
that first relies on the field must run this backfill again (see `ops.migrations.runner`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ops.migrations.runner import Step

CONVERSATIONS, MESSAGES = "conversations", "messages"
PAGE = 50  # conversations read per step
MAX_READS = 2000  # messages read per step, whatever the number of updates


@dataclass(frozen=True)
class MessageOwner:
    number: int = 1
    name: str = "message_owner"
    description: str = "copy each conversation's owner onto its messages"

    async def step(self, db: Any, cursor: str | None, limit: int) -> Step:
        """Conversations in id order from ``cursor``: ``after:C`` (C is done) or ``in:C:M``
        (C's messages after M are left), at most ``limit`` updates and `MAX_READS` reads."""
        from google.cloud.firestore_v1.base_query import FieldFilter

        conversations = db.collection(CONVERSATIONS)
        query = conversations.order_by("__name__").limit(PAGE)
        resume_after = resumed = ""
        if cursor:
            kind, _, rest = cursor.partition(":")
            resumed, _, resume_after = rest.partition(":")
            op = ">=" if kind == "in" else ">"
            where = FieldFilter("__name__", op, conversations.document(resumed))
            query = query.where(filter=where)
        updates: dict[str, dict[str, Any]] = {}
        read: list[str] = []
        reads = 0
        async for conversation in query.stream():
            owner = (conversation.to_dict() or {}).get("owner")
            collection = conversation.reference.collection(MESSAGES)
            messages = collection.order_by("__name__")
            if resume_after and conversation.id == resumed:  # the last step stopped inside it
                where = FieldFilter("__name__", ">", collection.document(resume_after))
                messages = messages.where(filter=where)
            async for message in messages.stream():
                reads += 1
                if owner and (message.to_dict() or {}).get("owner") != owner:
                    updates[message.reference.path] = {"owner": owner}
                if len(updates) == limit or reads >= MAX_READS:  # full: go on after it
                    return Step(updates, f"in:{conversation.id}:{message.id}")
            read.append(conversation.id)
        # A short page was the last one.
        return Step(updates, f"after:{read[-1]}" if len(read) == PAGE else None)


MIGRATION = MessageOwner()
