"""Paused agent loops: a call of a ``confirm = true`` tool waits in Firestore for the decision.

``confirmations/{id}`` holds the owner, the conversation, the proposed call, when it expires, and
the loop's state as JSON (the model request so far, the turn that proposed the call, the results of
the other calls of that turn, the tool calls made so far). It is created in the same commit as the
exchange that shows the proposal, and marked decided in the same commit as the answer that
follows the decision, so a restart of the function loses nothing and a decision counts once.
"""

from __future__ import annotations

import json
import re
import secrets
import string
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from shared import errors
from shared.agent.loop import CallRecord, Pending
from shared.agent.runner import ToolOutcome
from shared.llm.types import FunctionCall, FunctionResult, LlmRequest, Turn
from shared.stores import writes

COLLECTION = "confirmations"


def new_confirmation_id() -> str:
    """``cf_`` and 16 random letters and digits (about 95 bits)."""
    alphabet = string.ascii_letters + string.digits
    return "cf_" + "".join(secrets.choice(alphabet) for _ in range(16))


def _turn(data: dict[str, Any]) -> Turn:
    return Turn(
        role=data["role"],
        text=data.get("text", ""),
        calls=tuple(FunctionCall(**c) for c in data.get("calls", ())),
        results=tuple(FunctionResult(**r) for r in data.get("results", ())),
    )


def dumps(pending: Pending) -> str:
    """The loop's state as the JSON stored in the confirmation."""
    request = asdict(pending.request)
    return json.dumps(
        {
            "request": request,
            "calls": [asdict(c) for c in pending.calls],
            "text": pending.text,
            "results": [asdict(r) if r is not None else None for r in pending.results],
            "records": [asdict(r) for r in pending.records],
            "tools": list(pending.tools),
            "rounds": pending.rounds,
            "original_tier": pending.original_tier,
            "index": pending.index,
        },
        separators=(",", ":"),
        ensure_ascii=False,
    )


def loads(text: str) -> Pending:
    """The loop's state from its stored JSON."""
    data = json.loads(text)
    request = data["request"]
    request["turns"] = tuple(_turn(t) for t in request["turns"])
    request["tools"] = ()  # declared again from the registry when the loop goes on
    return Pending(
        request=LlmRequest(**request),
        calls=tuple(FunctionCall(**c) for c in data["calls"]),
        text=data["text"],
        results=tuple(FunctionResult(**r) if r is not None else None for r in data["results"]),
        records=tuple(CallRecord(**r) for r in data["records"]),
        tools=tuple(data["tools"]),
        rounds=int(data["rounds"]),
        original_tier=data["original_tier"],
        index=int(data["index"]),
    )


@dataclass(frozen=True)
class Confirmation:
    """A stored proposal; once decided, the call's outcome is kept with it."""

    id: str
    owner: str
    conversation_id: str
    state: str  # pending | executing | approved | denied | answered
    expires_at: datetime
    pending: Pending
    outcome: ToolOutcome | None = None
    update_time: Any = None


DECISIONS = {"approve": "approved", "deny": "denied"}
# The states a decision leaves behind: approving claims the call (executing) before it runs.
DECIDED = {"executing": "approve", "approved": "approve", "denied": "deny"}
KEEP_AFTER_EXPIRY = timedelta(days=1)  # then Firestore's TTL deletes it (`expire_at`)


class ConfirmationStore:
    """Creates, reads and settles confirmations in Firestore."""

    def __init__(self, db: Any, ttl_s: int) -> None:
        self._db = db
        self.ttl_s = ttl_s

    def _ref(self, confirmation_id: str) -> Any:
        return self._db.collection(COLLECTION).document(confirmation_id)

    def create_write(
        self, confirmation_id: str, owner: str, conversation_id: str, pending: Pending
    ) -> tuple[Any, datetime]:
        """The write that stores a new proposal (for the exchange's commit) and its expiry."""
        now = datetime.now(UTC)
        expires = now + timedelta(seconds=self.ttl_s)
        document = {
            "owner": owner,
            "conversation_id": conversation_id,
            "state": "pending",
            "tool": pending.call.name,
            "created_at": now,
            "expires_at": expires,
            "expire_at": expires + KEEP_AFTER_EXPIRY,
            "loop": dumps(pending),
        }
        return writes.create_write(self._ref(confirmation_id)._document_path, document), expires

    def answered_write(self, confirmation_id: str) -> Any:
        """The write, in the answer's commit, that closes a decided proposal."""
        return writes.merge_write(
            self._ref(confirmation_id)._document_path,
            {"state": "answered", "answered_at": datetime.now(UTC)},
        )

    async def require(self, confirmation_id: str, owner: str, decision: str) -> Confirmation:
        """The caller's proposal, pending or decided the same way and not yet answered: 404
        when it is not the caller's (or does not exist), 409 once answered or decided the other
        way, 410 once expired undecided."""
        if not re.match(r"^cf_[A-Za-z0-9]{16}\Z", confirmation_id):
            raise errors.NotFound(f"no confirmation {confirmation_id[:80]!r}")
        snapshot = await self._ref(confirmation_id).get()
        data = snapshot.to_dict() if snapshot.exists else None
        if data is None or data.get("owner") != owner:
            raise errors.NotFound(f"no confirmation {confirmation_id!r}")
        state = data["state"]
        if state == "answered" or (state != "pending" and DECIDED.get(state) != decision):
            shown = "approved" if state == "executing" else state
            raise errors.Conflict(f"confirmation {confirmation_id!r} was already {shown}")
        if state == "pending" and data["expires_at"] <= datetime.now(UTC):
            raise errors.Gone(f"confirmation {confirmation_id!r} expired; ask again")
        outcome = ToolOutcome(**json.loads(data["outcome"])) if data.get("outcome") else None
        return Confirmation(
            id=confirmation_id,
            owner=owner,
            conversation_id=data["conversation_id"],
            state=state,
            expires_at=data["expires_at"],
            pending=loads(data["loop"]),
            outcome=outcome,
            update_time=snapshot.update_time,
        )

    async def claim(
        self, found: Confirmation, decision: str, outcome: ToolOutcome | None = None
    ) -> None:
        """Take the decision before anything acts, on the condition that nobody changed the
        proposal since it was read: ``approve`` moves it to ``executing`` (its call runs next, at
        most once), ``deny`` to ``denied`` with its ``outcome``."""
        from google.api_core import exceptions

        state = "executing" if decision == "approve" else "denied"
        update: dict[str, Any] = {"state": state, "decided_at": datetime.now(UTC)}
        if outcome is not None:
            update["outcome"] = json.dumps(asdict(outcome), separators=(",", ":"))
        option = self._db.write_option(last_update_time=found.update_time)
        try:
            await self._ref(found.id).update(update, option=option)
        except (exceptions.FailedPrecondition, exceptions.NotFound):
            raise errors.Conflict(f"confirmation {found.id!r} was decided meanwhile") from None

    async def record(self, confirmation_id: str, outcome: ToolOutcome) -> None:
        """Keep an approved call's outcome: a retry goes on from it instead of acting again."""
        await self._ref(confirmation_id).update(
            {"state": "approved", "outcome": json.dumps(asdict(outcome), separators=(",", ":"))}
        )
