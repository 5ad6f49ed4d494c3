"""The chat use case: answer a user's message in its conversation and store the exchange.

Both the chat (JSON) and the stream (SSE) functions call this; their handlers only parse and answer.
The model sees the newest history that fits the prompt budget plus a rolling summary of the rest.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel

from shared import admission, errors
from shared.contracts import (
    ChatRequest,
    ChatResponse,
    ConversationDetail,
    ConversationPage,
    ConversationSummary,
    Deleted,
    DeltaEvent,
    DoneEvent,
    MessageItem,
    MetaEvent,
    PageQuery,
    Usage,
)
from shared.idempotency import Seal
from shared.llm import prompt
from shared.llm.client import LlmClient
from shared.llm.types import LlmRequest, LlmResult, Turn
from shared.redact import Redactor
from shared.settings import Settings
from shared.stores.conversations import ConversationStore, SummaryUpdate, new_id


@dataclass(frozen=True)
class Caller:
    """Who is asking: the subject that owns conversations and pays for tokens."""

    subject: str
    tier: str | None = None  # its rate-limit and budget tier (an API key's, or a token claim)


@dataclass(frozen=True)
class Prepared:
    """A turn ready to send: the model request and the summary update to store with it."""

    request: LlmRequest
    summary: SummaryUpdate | None


T = TypeVar("T")


class ChatService:
    """Orchestrates one chat turn: history → prompt budget → model → store → answer."""

    def __init__(
        self,
        settings: Settings,
        llm: LlmClient,
        store: ConversationStore,
        redactor: Redactor | None = None,
    ) -> None:
        self._settings = settings
        self._llm = llm
        self._store = store
        self._redactor = redactor  # set: personal data leaves no trace in the model's prompt

    def _for_model(self, text: str) -> str:
        """The user's text as the model receives it (redacted when ``redact_prompts`` is set)."""
        return self._redactor.text(text) if self._redactor is not None else text

    def check_size(self, request: ChatRequest) -> None:
        """Reject a message over the configured length with 413, before any work is done."""
        limit = self._settings.max_message_chars
        if len(request.message) > limit:
            raise errors.PayloadTooLarge(
                f"message is {len(request.message)} characters; the limit is {limit}",
                details=[{"field": "message", "limit": limit}],
            )

    async def prepare(self, request: ChatRequest, caller: Caller) -> Prepared:
        """Load what the model must see, folding history that no longer fits into the summary."""
        s = self._settings
        self.check_size(request)
        history: list[prompt.Message] = []
        summary = ""
        if request.conversation_id:
            await admission.settle_pending()  # a Firestore read comes before any cache lookup
            conversation = await self._store.require_owned(request.conversation_id, caller.subject)
            summary = conversation.get("summary") or ""
            history = await self._store.history(
                request.conversation_id, s.history_messages, conversation.get("summary_through")
            )
        plan = prompt.fit(history, s.prompt_history_tokens, max_messages=s.history_messages - 2)
        update = None
        if plan.dropped:
            folded = await self._llm.generate(
                prompt.summary_request(
                    summary,
                    plan.dropped,
                    s.summary_max_tokens,
                    subject=caller.subject,
                    budget_tier=caller.tier,
                    cache_scope=caller.subject,
                )
            )
            summary = folded.text
            through = plan.dropped[-1].created_at
            update = SummaryUpdate(summary, through) if through is not None else None
        system = s.system_instruction
        if request.language:
            system = (
                f"{system}\n\nAnswer in the language tagged {request.language} (BCP 47).".strip()
            )
        if summary:
            system = f"{system}\n\nSummary of the earlier conversation:\n{summary}".strip()
        private = bool(plan.kept or summary)
        return Prepared(
            request=LlmRequest(
                turns=(*plan.turns, Turn(role="user", text=self._for_model(request.message))),
                tier=request.tier,
                system_instruction=system or None,
                max_output_tokens=min(
                    request.max_output_tokens or s.max_output_tokens, s.max_output_tokens
                ),
                temperature=s.temperature if request.temperature is None else request.temperature,
                subject=caller.subject,
                budget_tier=caller.tier,
                query_class="chat",
                cache_scope=caller.subject if private else None,
            ),
            summary=update,
        )

    async def _store_answer(
        self,
        request: ChatRequest,
        caller: Caller,
        ids: tuple[str, str],
        prepared: Prepared,
        answer: LlmResult,
        request_id: str,
        also: Sequence[Any] = (),
    ) -> None:
        await self._store.append_exchange(
            owner=caller.subject,
            conversation_id=ids[0],
            new_conversation=request.conversation_id is None,
            message_id=ids[1],
            user_text=request.message,
            answer=answer,
            request_id=request_id,
            summary=prepared.summary,
            retention_days=self._settings.conversation_retention_days or None,
            also=also,
        )

    async def chat(
        self, request: ChatRequest, caller: Caller, request_id: str, seal: Seal | None = None
    ) -> ChatResponse:
        """Answer one message and return it in the contract's shape.

        ``seal`` turns the answer's JSON body into writes stored in the same commit as the
        exchange (an idempotent request's recorded answer), so both are stored or neither is.
        """
        prepared = await self.prepare(request, caller)
        cid, mid = request.conversation_id or new_id(), new_id()
        answer = await self._llm.generate(prepared.request)
        reply = ChatResponse(
            conversation_id=cid,
            message_id=mid,
            text=answer.text,
            finish_reason=answer.finish_reason,
            usage=usage_of(answer),
            request_id=request_id,
        )
        also = seal(reply.model_dump_json().encode()) if seal is not None else ()
        await self._store_answer(request, caller, (cid, mid), prepared, answer, request_id, also)
        return reply

    async def stream(
        self,
        request: ChatRequest,
        caller: Caller,
        request_id: str,
        message_id: str | None = None,
        also: Sequence[Any] = (),
    ) -> AsyncIterator[tuple[str, BaseModel]]:
        """Answer one message as events: ``meta``, ``delta``…, ``usage``, ``done``.

        ``meta`` waits for the model's first piece of the answer: until then nothing has been
        sent, so a failure (the model unavailable, the breaker open, a budget refused) is a
        plain HTTP error with the same status and ``Retry-After`` as on chat. ``also``: writes
        committed with the exchange (an idempotent stream's record of it).
        """
        prepared = await self.prepare(request, caller)
        cid, mid = request.conversation_id or new_id(), message_id or new_id()
        chain = self._llm.chain(prepared.request)
        chunks = self._llm.stream(prepared.request)
        first = await anext(chunks)
        yield (
            "meta",
            MetaEvent(conversation_id=cid, message_id=mid, model=chain[0], request_id=request_id),
        )
        answer: LlmResult | None = None
        async for chunk in _prepend(first, chunks):
            if chunk.text:
                yield "delta", DeltaEvent(text=chunk.text)
            if chunk.result is not None:
                answer = chunk.result
        if answer is None:  # pragma: no cover - the client always closes with a result
            raise errors.UpstreamError("the model stream ended without a result")
        await self._store_answer(request, caller, (cid, mid), prepared, answer, request_id, also)
        yield "usage", usage_of(answer)
        yield "done", DoneEvent(finish_reason=answer.finish_reason)

    async def list_conversations(self, caller: Caller, page: PageQuery) -> ConversationPage:
        items, token = await self._store.list_page(caller.subject, page.page_size, page.page_token)
        return ConversationPage(
            conversations=[_summary(cid, data) for cid, data in items], next_page_token=token
        )

    async def conversation(
        self, caller: Caller, conversation_id: str, page: PageQuery
    ) -> ConversationDetail:
        data = await self._store.require_owned(conversation_id, caller.subject)
        items, token = await self._store.messages_page(
            conversation_id, page.page_size, page.page_token
        )
        return ConversationDetail(
            conversation=_summary(conversation_id, data),
            messages=[_message(mid, m) for mid, m in items],
            next_page_token=token,
        )

    async def delete_conversation(self, caller: Caller, conversation_id: str) -> Deleted:
        count = await self._store.delete(conversation_id, caller.subject)
        return Deleted(conversation_id=conversation_id, deleted_messages=count)


def _summary(conversation_id: str, data: dict[str, Any]) -> ConversationSummary:
    return ConversationSummary(
        conversation_id=conversation_id,
        title=data.get("title", ""),
        created_at=data.get("created_at") or data["updated_at"],
        updated_at=data["updated_at"],
        message_count=int(data.get("message_count", 0)),
    )


def _message(message_id: str, data: dict[str, Any]) -> MessageItem:
    return MessageItem(
        message_id=message_id,
        role=data["role"],
        text=data["text"],
        created_at=data["created_at"],
        model=data.get("model"),
        input_tokens=data.get("input_tokens"),
        output_tokens=data.get("output_tokens"),
    )


def usage_of(answer: LlmResult) -> Usage:
    return Usage(
        input_tokens=answer.input_tokens,
        output_tokens=answer.output_tokens,
        model=answer.model,
        cached=answer.cached,
    )


async def _prepend(first: T, rest: AsyncIterator[T]) -> AsyncIterator[T]:
    """``first``, then the rest of an iterator."""
    yield first
    async for item in rest:
        yield item
