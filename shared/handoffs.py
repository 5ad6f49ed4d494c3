"""Hand-off to a person: a conversation the agent should not answer alone any more.

A hand-off starts when the user asks for a person, when the model calls the built-in ``handoff``
tool, or after ``handoff_after_unsure`` answers in a row that the agent was unsure of (tier
``auto`` escalated them). The conversation is flagged (``handoff.status`` ``pending``), an event
goes to the ``ngx-handoffs`` Pub/Sub topic for the support team's tools, and from then on the
model is not called for that conversation: the user's messages are stored and acknowledged.
Operators list, reply (``active``) and close hand-offs (`agentctl handoff`, or the
``handoffs``-scoped routes); replies are stored in the conversation as ``operator`` messages and
reach the user's open sessions at once. Closing gives the conversation back to the agent.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field

from shared import errors, pseudonyms
from shared.agent.loop import CallRecord
from shared.agent.tools import Tool, ToolContext
from shared.contracts import (
    ID_PATTERN,
    HandoffClosed,
    HandoffItem,
    HandoffReason,
    HandoffState,
    HandoffStatus,
    OperatorMessage,
    Usage,
)
from shared.llm.types import LlmResult
from shared.memorystore import Memorystore
from shared.notices import publish as notify
from shared.settings import Settings
from shared.stores.conversations import CONVERSATIONS, MESSAGES, new_id
from shared.topics import Topic

log = logging.getLogger("ngx.handoffs")
OPEN = ("pending", "active")
MODEL = "handoff"  # what a held message's answer names as its model
FINISH = "handoff"  # and as its finish reason
ACKNOWLEDGED = (
    "I've asked a person from our support team to join this conversation. "
    "They will reply here; you can keep writing in the meantime."
)
HELD = "Your message is with our support team; a person will reply here."
# First-person requests for a person ("can I talk to a human?", "I want to speak with a real
# person", "connect me to an agent", "human please") — not questions that merely mention agents,
# people or transfers ("how do I connect my agent to Slack?").
_WHO = (
    r"(?:a\s+|an\s+|some\s*)?(?:real\s+|live\s+|actual\s+)?"
    r"(?:human|person|people|representative|operator|someone|somebody|support\s+agent|agent)\b"
)
_TALK = r"(?:talk|speak|chat)\s+(?:to|with)\s+"
ASKS_FOR_PERSON = re.compile(
    "|".join(
        (
            r"\b(?:i|we)\s*(?:'d|would|want|need|wanna|must)\s+(?:like\s+)?(?:to\s+)?"
            + _TALK
            + _WHO,
            r"\b(?:can|could|may)\s+i\s+(?:please\s+)?" + _TALK + _WHO,
            r"\b(?:connect|transfer|put)\s+me\s+(?:through\s+)?(?:to|with)\s+" + _WHO,
            r"\blet\s+me\s+" + _TALK + _WHO,
            r"^\W*(?:a\s+)?(?:human|real\s+person|live\s+agent|representative|operator)"
            r"(?:\s+please)?\W*$",
        )
    ),
    re.IGNORECASE,
)


def asks_for_person(text: str) -> bool:
    """Whether the user asks to talk to a person (English phrasings)."""
    return ASKS_FOR_PERSON.search(text[:2000]) is not None


TOOL = "handoff"


class HandoffArguments(BaseModel):
    reason: str = Field(
        min_length=1, max_length=300, description="why a person should take over, in a line"
    )


def handoff_tool() -> Tool:
    """The built-in ``handoff`` tool: the model asks a person to take the conversation over.

    It only says so: the chat service flags the conversation in the same commit as the answer
    that called it (a new conversation exists only from then) and announces the hand-off."""

    async def run(arguments: BaseModel, context: ToolContext) -> dict[str, Any]:
        return {"status": "a person from support has been asked to join; tell the user so"}

    return Tool(
        name=TOOL,
        description="Ask a person from the support team to take this conversation over: when "
        "the user needs something you cannot do or decide, or is upset and wants a human.",
        arguments=HandoffArguments,
        run=run,
        kind="builtin",
        timeout_s=2.0,
        cache_ttl_s=None,  # it acts: an answer that called it is never cached
    )


def called(calls: Sequence[CallRecord]) -> bool:
    """Whether an answer's tool calls include a successful ``handoff``."""
    return any(call.name == TOOL and call.status == "ok" for call in calls)


def open_state(conversation: dict[str, Any] | None) -> HandoffState | None:
    """A conversation's hand-off while it is open, from its document (None when there is none)."""
    found = (conversation or {}).get("handoff")
    if not found or found.get("status") not in OPEN:
        return None
    return HandoffState(**found)


@dataclass(frozen=True)
class Held:
    """A message a person, not the model, takes: the hand-off and whether it starts now."""

    state: HandoffState
    new: bool

    @property
    def text(self) -> str:
        return ACKNOWLEDGED if self.new else HELD

    @property
    def result(self) -> LlmResult:
        """The acknowledgement, stored as the answer (no model call, no tokens)."""
        return LlmResult(text=self.text, model=MODEL, finish_reason=FINISH)

    def usage(self) -> Usage:
        return Usage(model=MODEL, model_calls=0)


class HandoffService:
    """Flags, holds, lists, replies to and closes hand-offs."""

    def __init__(
        self, db: Any, store: Memorystore | None, settings: Settings, topic: Topic | None = None
    ) -> None:
        self._db = db
        self._store = store
        self._settings = settings
        self._topic = topic  # the ngx-handoffs topic (None: no events, as in unit tests)
        self._background: set[asyncio.Task[None]] = set()

    def _ref(self, conversation_id: str) -> Any:
        if not re.match(ID_PATTERN, conversation_id) or conversation_id.startswith("__"):
            raise errors.NotFound(f"conversation {conversation_id[:80]!r} not found")
        return self._db.collection(CONVERSATIONS).document(conversation_id)

    def new_state(self, reason: HandoffReason) -> HandoffState:
        """A hand-off starting now."""
        return HandoffState(**self.start_fields(reason)["handoff"])

    @staticmethod
    def fields_of(held: Held) -> dict[str, Any] | None:
        """What a held exchange writes on its conversation (a new hand-off's flag)."""
        return {"handoff": held.state.model_dump(), "unsure_answers": 0} if held.new else None

    def start_fields(self, reason: HandoffReason) -> dict[str, Any]:
        """What a new hand-off writes on its conversation."""
        now = datetime.now(UTC)
        state = HandoffState(status="pending", reason=reason, requested_at=now, updated_at=now)
        return {"handoff": state.model_dump(), "unsure_answers": 0}

    async def announce(self, conversation_id: str, owner: str, reason: HandoffReason) -> None:
        """Tell the support team's tools (the ``ngx-handoffs`` topic) a hand-off started. In
        the background: the flag is what counts (operators list flagged conversations), and the
        user's answer does not wait for Pub/Sub."""
        log.info("handoff requested", extra={"conversation_id": conversation_id, "reason": reason})
        if self._topic is None:
            return
        event = {
            "conversation_id": conversation_id,
            "owner": pseudonyms.of_subject(self._settings, owner),
            "reason": reason,
        }
        task = asyncio.create_task(self._publish(json.dumps(event).encode(), conversation_id))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _publish(self, data: bytes, conversation_id: str) -> None:
        assert self._topic is not None
        try:
            await self._topic.publish(data, kind="handoff")
        except Exception:
            log.exception("handoff event not published", extra={"conversation_id": conversation_id})

    async def start(self, conversation_id: str, owner: str, reason: HandoffReason) -> HandoffState:
        """Flag an existing conversation of ``owner`` (kept as is when one is already open)."""
        ref = self._ref(conversation_id)
        snapshot = await ref.get()
        data = snapshot.to_dict() if snapshot.exists else None
        if data is None or data.get("owner") != owner:
            raise errors.NotFound(f"conversation {conversation_id} not found")
        current = data.get("handoff") or {}
        if current.get("status") in OPEN:
            return HandoffState(**current)
        fields = self.start_fields(reason)
        await ref.update(fields)
        await self.announce(conversation_id, owner, reason)
        return HandoffState(**fields["handoff"])

    async def count_unsure(self, conversation_id: str, unsure: bool) -> int:
        """Count an answer the agent was unsure of (reset by a sure one); the streak so far."""
        ref = self._ref(conversation_id)
        if not unsure:
            await ref.update({"unsure_answers": 0})
            return 0
        from google.cloud.firestore_v1 import Increment

        await ref.update({"unsure_answers": Increment(1)})
        snapshot = await ref.get()
        return int((snapshot.to_dict() or {}).get("unsure_answers", 0))

    # --- operators ----------------------------------------------------------------------------

    async def list(
        self, status: HandoffStatus | None = None, limit: int = 100
    ) -> list[HandoffItem]:
        """Hand-offs by status (open ones: pending and active), oldest request first."""
        from google.cloud.firestore_v1.base_query import FieldFilter

        wanted = [status] if status else list(OPEN)
        query = self._db.collection(CONVERSATIONS).where(
            filter=FieldFilter("handoff.status", "in", wanted)
        )
        items = []
        async for snapshot in query.limit(limit).stream():
            data = snapshot.to_dict() or {}
            items.append(
                HandoffItem(
                    conversation_id=snapshot.id,
                    owner=pseudonyms.of_subject(self._settings, data.get("owner", "")),
                    title=data.get("title", ""),
                    handoff=HandoffState(**data["handoff"]),
                )
            )
        return sorted(items, key=lambda item: item.handoff.requested_at)

    async def require_open(self, conversation_id: str) -> None:
        """404 unless the conversation has an open hand-off."""
        await self._open(conversation_id)

    async def _open(self, conversation_id: str) -> tuple[Any, dict[str, Any]]:
        ref = self._ref(conversation_id)
        snapshot = await ref.get()
        data = snapshot.to_dict() if snapshot.exists else None
        if data is None or (data.get("handoff") or {}).get("status") not in OPEN:
            raise errors.NotFound(f"no open hand-off for conversation {conversation_id}")
        return ref, data

    async def reply(self, conversation_id: str, operator: str, text: str) -> OperatorMessage:
        """Store a person's reply in the conversation and show it on the user's sessions."""
        ref, data = await self._open(conversation_id)
        now = datetime.now(UTC)
        message_id = new_id()
        message: dict[str, Any] = {
            "role": "operator",
            "owner": data["owner"],
            "text": text,
            "created_at": now,
            "operator": pseudonyms.of_subject(self._settings, operator),
        }
        if data.get("expire_at") is not None:
            message["expire_at"] = data["expire_at"]
        batch = self._db.batch()
        batch.create(ref.collection(MESSAGES).document(message_id), message)
        state = {**data["handoff"], "status": "active", "updated_at": now}
        batch.update(ref, {"handoff": state, "updated_at": now})
        await batch.commit()
        sent = OperatorMessage(
            conversation_id=conversation_id, message_id=message_id, text=text, created_at=now
        )
        await self._notify(data["owner"], "operator_message", sent)
        return sent

    async def close(self, conversation_id: str) -> HandoffClosed:
        """End the hand-off: the agent answers the conversation again."""
        ref, data = await self._open(conversation_id)
        now = datetime.now(UTC)
        state = {**data["handoff"], "status": "closed", "updated_at": now}
        await ref.update({"handoff": state, "unsure_answers": 0})
        closed = HandoffClosed(conversation_id=conversation_id, status="closed")
        await self._notify(data["owner"], "handoff_closed", closed)
        return closed

    async def _notify(self, owner: str, name: str, data: BaseModel) -> None:
        if self._store is not None:
            await notify(self._store, self._settings, owner, name, data)
