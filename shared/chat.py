"""The chat use case: answer a user's message in its conversation and store the exchange.

Both the chat (JSON) and the stream (SSE) functions call this; their handlers only parse and answer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from pydantic import BaseModel

from shared import errors
from shared.contracts import ChatRequest, ChatResponse, DeltaEvent, DoneEvent, MetaEvent, Usage
from shared.llm.types import LlmRequest, LlmResult, Turn
from shared.llm.vertex import VertexClient
from shared.settings import Settings
from shared.stores.conversations import ConversationStore, new_id


@dataclass(frozen=True)
class Caller:
    """Who is asking: the subject that owns conversations."""

    subject: str


class ChatService:
    """Orchestrates one chat turn: history → model → store → answer."""

    def __init__(self, settings: Settings, llm: VertexClient, store: ConversationStore) -> None:
        self._settings = settings
        self._llm = llm
        self._store = store

    def check_size(self, request: ChatRequest) -> None:
        """Reject a message over the configured length with 413, before any work is done."""
        limit = self._settings.max_message_chars
        if len(request.message) > limit:
            raise errors.PayloadTooLarge(
                f"message is {len(request.message)} characters; the limit is {limit}",
                details=[{"field": "message", "limit": limit}],
            )

    async def _prepare(self, request: ChatRequest, caller: Caller) -> LlmRequest:
        self.check_size(request)
        history: list[Turn] = []
        if request.conversation_id:
            await self._store.require_owned(request.conversation_id, caller.subject)
            history = await self._store.history(
                request.conversation_id, self._settings.history_messages
            )
        return LlmRequest(
            model=self._settings.default_model,
            turns=(*history, Turn(role="user", text=request.message)),
            system_instruction=self._settings.system_instruction or None,
            max_output_tokens=self._settings.max_output_tokens,
            temperature=self._settings.temperature,
        )

    async def _store_answer(
        self,
        request: ChatRequest,
        caller: Caller,
        ids: tuple[str, str],
        answer: LlmResult,
        request_id: str,
    ) -> None:
        await self._store.append_exchange(
            owner=caller.subject,
            conversation_id=ids[0],
            new_conversation=request.conversation_id is None,
            message_id=ids[1],
            user_text=request.message,
            answer=answer,
            request_id=request_id,
        )

    async def chat(self, request: ChatRequest, caller: Caller, request_id: str) -> ChatResponse:
        """Answer one message and return it in the contract's shape."""
        llm_request = await self._prepare(request, caller)
        cid, mid = request.conversation_id or new_id(), new_id()
        answer = await self._llm.generate(llm_request)
        await self._store_answer(request, caller, (cid, mid), answer, request_id)
        return ChatResponse(
            conversation_id=cid,
            message_id=mid,
            text=answer.text,
            finish_reason=answer.finish_reason,
            usage=_usage(answer),
            request_id=request_id,
        )

    async def stream(
        self, request: ChatRequest, caller: Caller, request_id: str
    ) -> AsyncIterator[tuple[str, BaseModel]]:
        """Answer one message as events: ``meta``, ``delta``…, ``usage``, ``done``."""
        llm_request = await self._prepare(request, caller)
        cid, mid = request.conversation_id or new_id(), new_id()
        yield (
            "meta",
            MetaEvent(
                conversation_id=cid, message_id=mid, model=llm_request.model, request_id=request_id
            ),
        )
        parts: list[str] = []
        finish, tokens_in, tokens_out = "STOP", 0, 0
        async for chunk in self._llm.stream(llm_request):
            if chunk.text:
                parts.append(chunk.text)
                yield "delta", DeltaEvent(text=chunk.text)
            if chunk.finish_reason:
                finish = chunk.finish_reason
                tokens_in = chunk.input_tokens or 0
                tokens_out = chunk.output_tokens or 0
        answer = LlmResult(
            text="".join(parts),
            model=llm_request.model,
            finish_reason=finish,
            input_tokens=tokens_in,
            output_tokens=tokens_out,
        )
        await self._store_answer(request, caller, (cid, mid), answer, request_id)
        yield "usage", _usage(answer)
        yield "done", DoneEvent(finish_reason=finish)


def _usage(answer: LlmResult) -> Usage:
    return Usage(
        input_tokens=answer.input_tokens,
        output_tokens=answer.output_tokens,
        model=answer.model,
        cached=answer.cached,
    )
