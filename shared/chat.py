"""The chat use case: answer a user's message in its conversation and store the exchange.

Both the chat (JSON) and the stream (SSE) functions call this; their handlers only parse and answer.
The model sees the newest history that fits the prompt budget plus a rolling summary of the rest.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from pydantic import BaseModel

from shared import admission, errors
from shared.agent.confirmations import ConfirmationStore, new_confirmation_id
from shared.agent.loop import (
    Agent,
    Answer,
    CallRecord,
    Event,
    TextPiece,
    ToolFinished,
    ToolStarted,
)
from shared.agent.runner import ToolOutcome, ToolRunner, failure
from shared.agent.tools import Tool, ToolContext, ToolRegistry
from shared.contracts import (
    ChatRequest,
    ChatResponse,
    ConfirmationRequired,
    ConversationDetail,
    ConversationPage,
    ConversationSummary,
    DataEvent,
    Deleted,
    DeltaEvent,
    DoneEvent,
    Feedback,
    FeedbackRequest,
    MessageItem,
    MetaEvent,
    ModelUsage,
    PageQuery,
    Source,
    SourcesEvent,
    ToolCall,
    ToolCallEvent,
    ToolResultEvent,
    Usage,
)
from shared.handoffs import HandoffService, Held, asks_for_person, called, open_state
from shared.idempotency import Seal
from shared.llm import prompt
from shared.llm.client import LlmClient
from shared.llm.types import LlmRequest, Turn
from shared.redact import Redactor
from shared.retrieval.retriever import Retriever, context, retrieve_tool
from shared.retrieval.vector import Hit
from shared.semantic_answers import answer_of, bucket, keepable, kept_answer, takes_part
from shared.semantic_cache import Lookup, SemanticCache
from shared.settings import Settings
from shared.stores.conversations import ConversationStore, SummaryUpdate, new_id


@dataclass(frozen=True)
class Caller:
    """Who is asking: the subject that owns conversations and pays for tokens, and its scopes
    (which tools it may use)."""

    subject: str
    tier: str | None = None  # its rate-limit and budget tier (an API key's, or a token claim)
    scopes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Prepared:
    """A turn ready to send: the model request, the tools offered with it and the summary update
    to store with the answer."""

    request: LlmRequest
    summary: SummaryUpdate | None
    tools: tuple[Tool, ...] = ()
    sources: tuple[Source, ...] = ()
    semantic: Lookup | None = None  # the semantic cache's lookup, when the request took part
    private_context: bool = False  # history, a summary or a private document in the prompt
    expires_at: float | None = None  # the earliest expiry of the retrieved chunks (epoch s)


T = TypeVar("T")
log = logging.getLogger("ngx.chat")


OUTCOME_UNKNOWN = (
    "the approved action was started but its outcome was not recorded: it may have run; "
    "check before proposing it again"
)


class ChatService:
    """Orchestrates one chat turn: history → prompt budget → model → store → answer."""

    def __init__(
        self,
        settings: Settings,
        llm: LlmClient,
        store: ConversationStore,
        redactor: Redactor | None = None,
        agent: Agent | None = None,
        tools: ToolRegistry | None = None,
        confirmations: ConfirmationStore | None = None,
        retriever: Retriever | None = None,
        semantic: SemanticCache | None = None,
        handoffs: HandoffService | None = None,
    ) -> None:
        self._settings = settings
        self._handoffs = handoffs
        self._llm = llm
        self._store = store
        self._redactor = redactor  # set: personal data leaves no trace in the model's prompt
        self._agent = agent or Agent(
            settings, llm, ToolRunner(None, settings.agent_tool_result_tokens)
        )
        self._tools = tools or ToolRegistry()
        self._confirmations = confirmations
        self._retriever = retriever
        self._semantic = semantic
        self._background: set[asyncio.Task[None]] = set()

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

    async def prepare(
        self, request: ChatRequest, caller: Caller, conversation: dict[str, Any] | None = None
    ) -> Prepared:
        """Load what the model must see, folding history that no longer fits into the summary
        (``conversation``: the continued conversation, when the caller has read it already)."""
        s = self._settings
        self.check_size(request)
        tools = self._tools.offered(request.tools, caller.scopes)
        history: list[prompt.Message] = []
        summary = ""
        if request.conversation_id:
            if conversation is None:
                await admission.settle_pending()  # a Firestore read comes before any lookup
                conversation = await self._store.require_owned(
                    request.conversation_id, caller.subject
                )
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
        mode = self._mode(request)
        if self._retriever is not None and mode == "tool":
            tools = (*tools, retrieve_tool(self._retriever, request.retrieval_tags))
        model_request = LlmRequest(
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
            response_schema=canonical(request.schema_document()),
            tools=tuple(t.declaration for t in tools),
        )
        lookup = await self._semantic_lookup(request, caller, model_request, tools, mode)
        if lookup is not None and lookup.hit is not None:  # answered already: nothing to fetch
            sources = tuple(Source(**x) for x in lookup.hit.sources)
            return Prepared(model_request, None, tools, sources, lookup)
        # Stable first, so Gemini's prompt cache can serve the prefix: the instruction, (the tool
        # declarations travel beside it), the retrieved context, then what is this conversation's.
        hits = await self._retrieve(request, caller)
        if hits:
            system = f"{system}\n\n{context(hits, s.retrieval_context_tokens)}".strip()
        if summary:
            system = f"{system}\n\nSummary of the earlier conversation:\n{summary}".strip()
        private = bool(plan.kept or summary) or any(h.visibility != "public" for h in hits)
        expiries = [h.expires_at for h in hits if h.expires_at]
        return Prepared(
            request=replace(
                model_request,
                system_instruction=system or None,
                cache_scope=caller.subject if private else None,
            ),
            summary=update,
            tools=tools,
            sources=tuple(source_of(h) for h in hits),
            semantic=lookup,
            private_context=private,
            expires_at=min(expiries) if expiries else None,
        )

    async def _semantic_lookup(
        self,
        request: ChatRequest,
        caller: Caller,
        model_request: LlmRequest,
        tools: Sequence[Tool],
        mode: str,
    ) -> Lookup | None:
        """The semantic cache's answer to a context-free question (None: it does not take part)."""
        if self._semantic is None or not takes_part(request, self._settings):
            return None
        version = None
        if mode != "off" and self._retriever is not None:
            version = await self._retriever.corpus_version()
        await admission.settle_pending()  # an embedding and a Memorystore read come first
        name = bucket(model_request, tools, (mode, request.retrieval_tags), version, self._settings)
        try:
            return await self._semantic.lookup(request.message, name, caller.subject)
        except errors.AppError:  # the embedding model unreachable: answer without the cache
            log.warning("semantic cache lookup failed; answering without it")
            return None

    def _keep(self, request: ChatRequest, prepared: Prepared, done: Answer, caller: Caller) -> None:
        """Keep a fresh answer for similar questions, off the request's path; for its caller
        only when its context was private or the question names personal data."""
        lookup = prepared.semantic
        if self._semantic is None or lookup is None or lookup.hit is not None:
            return
        private = prepared.private_context or self._semantic.personal(request.message)
        keep = keepable(done, prepared.tools, private, caller.subject, prepared.expires_at)
        if keep is None:
            return
        owner, ttl = keep
        kept = kept_answer(done, cited(prepared, done))
        task = asyncio.create_task(self._semantic.remember(lookup, kept, owner, ttl))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _mode(self, request: ChatRequest) -> str:
        return request.retrieval or self._settings.retrieval_default

    async def _retrieve(self, request: ChatRequest, caller: Caller) -> list[Hit]:
        """The corpus chunks for this question (retrieval ``auto``), or none."""
        if self._mode(request) != "auto" or self._retriever is None:
            return []
        await admission.settle_pending()  # an embedding call and a Firestore query come first
        return await self._retriever.retrieve(
            request.message, caller.subject, tags=request.retrieval_tags
        )

    async def _store_answer(
        self,
        request: ChatRequest,
        caller: Caller,
        ids: tuple[str, str],
        prepared: Prepared,
        done: Answer,
        request_id: str,
        also: Sequence[Any] = (),
    ) -> None:
        await self._store.append_exchange(
            owner=caller.subject,
            conversation_id=ids[0],
            new_conversation=request.conversation_id is None,
            message_id=ids[1],
            user_text=request.message,
            answer=done.result,
            request_id=request_id,
            tool_calls=[stored_call(c) for c in done.calls],
            sources=[source.model_dump(mode="json") for source in cited(prepared, done)],
            summary=prepared.summary,
            retention_days=self._settings.conversation_retention_days or None,
            also=also,
            conversation_fields=self._handed_off(done),
        )
        if self._handoffs is not None and called(done.calls):
            await self._handoffs.announce(ids[0], caller.subject, "agent")

    def _handed_off(self, done: Answer) -> dict[str, Any] | None:
        """A hand-off the model asked for with the ``handoff`` tool, set with its answer."""
        if self._handoffs is None or not called(done.calls):
            return None
        return self._handoffs.start_fields("agent")

    async def chat(
        self, request: ChatRequest, caller: Caller, request_id: str, seal: Seal | None = None
    ) -> ChatResponse:
        """Answer one message and return it in the contract's shape.

        ``seal`` turns the answer's JSON body into writes stored in the same commit as the
        exchange (an idempotent request's recorded answer), so both are stored or neither is.
        """
        held, conversation = await self._intercept(request, caller)
        if held is not None:  # a person, not the model, takes this message
            cid, mid = request.conversation_id or new_id(), new_id()
            reply = self._held_reply(held, cid, mid, request_id)
            sealed = seal(reply.model_dump_json().encode()) if seal is not None else ()
            await self._store_held(held, request, caller, (cid, mid), request_id, sealed)
            return reply
        prepared = await self.prepare(request, caller, conversation)
        cid, mid = request.conversation_id or new_id(), new_id()
        done = await _answer_of(self._run(prepared, caller, request_id, stream=False))
        proposal, writes = self._propose(done, caller, cid)
        reply = self._reply(done, cid, mid, request_id, proposal, cited(prepared, done))
        also = [*writes, *(seal(reply.model_dump_json().encode()) if seal is not None else ())]
        await self._store_answer(request, caller, (cid, mid), prepared, done, request_id, also)
        self._keep(request, prepared, done, caller)
        await self._count_unsure(request, caller, cid, done)
        return reply

    async def _intercept(
        self, request: ChatRequest, caller: Caller
    ) -> tuple[Held | None, dict[str, Any] | None]:
        """The hand-off that takes this message from the model, if any, and the conversation
        it continues (read once here, for `prepare` too). Limits are settled before any read or
        write (a cache-hit chat still makes one Redis round trip)."""
        conversation = None
        if request.conversation_id:
            await admission.settle_pending()
            conversation = await self._store.require_owned(request.conversation_id, caller.subject)
        if self._handoffs is None:
            return None, conversation
        state = open_state(conversation)
        if state is not None:
            return Held(state, new=False), conversation
        if not asks_for_person(request.message):
            return None, conversation
        await admission.settle_pending()  # a refused request writes nothing
        return Held(self._handoffs.new_state("user_asked"), new=True), conversation

    @staticmethod
    def _held_reply(held: Held, cid: str, mid: str, request_id: str) -> ChatResponse:
        return ChatResponse(
            conversation_id=cid,
            message_id=mid,
            text=held.text,
            finish_reason=held.result.finish_reason,
            handoff=held.state,
            usage=held.usage(),
            request_id=request_id,
        )

    async def _store_held(
        self,
        held: Held,
        request: ChatRequest,
        caller: Caller,
        ids: tuple[str, str],
        request_id: str,
        also: Sequence[Any],
    ) -> None:
        """Keep the user's message with its acknowledgement; announce a hand-off that starts."""
        assert self._handoffs is not None
        self.check_size(request)
        await self._store.append_exchange(
            owner=caller.subject,
            conversation_id=ids[0],
            new_conversation=request.conversation_id is None,
            message_id=ids[1],
            user_text=request.message,
            answer=held.result,
            request_id=request_id,
            retention_days=self._settings.conversation_retention_days or None,
            also=also,
            conversation_fields=self._handoffs.fields_of(held),
        )
        if held.new:
            await self._handoffs.announce(ids[0], caller.subject, held.state.reason)

    async def _count_unsure(
        self, request: ChatRequest, caller: Caller, cid: str, done: Answer
    ) -> None:
        """Answers the agent was unsure of (tier auto escalated them), in a row, ask a person
        to join once there are ``handoff_after_unsure`` of them."""
        limit = self._settings.handoff_after_unsure
        if self._handoffs is None or request.tier != "auto" or limit == 0:
            return
        try:  # best effort: the answer is stored and must reach the user whatever happens here
            streak = await self._handoffs.count_unsure(cid, unsure=len(done.models) > 1)
            if streak >= limit:
                await self._handoffs.start(cid, caller.subject, "unsure_answers")
        except Exception:
            log.exception("unsure answers not counted", extra={"conversation_id": cid})

    async def confirm(
        self,
        caller: Caller,
        confirmation_id: str,
        decision: str,
        request_id: str,
        seal: Seal | None = None,
    ) -> ChatResponse:
        """Go on after the user approved (the call runs, once) or denied a proposed call.

        The decision and the call's outcome are recorded before the model is asked again, so a
        retry after a failure goes on from them instead of acting a second time."""
        store = self._require_confirmations()
        found = await store.require(confirmation_id, caller.subject, decision)
        await self._store.require_owned(found.conversation_id, caller.subject)  # not deleted
        pending = found.pending
        tools = self._tools.offered(pending.tools, caller.scopes)
        context = ToolContext(subject=caller.subject, request_id=request_id)
        outcome = found.outcome
        if outcome is None and found.state == "executing":
            # An earlier attempt claimed the call and stopped before its outcome was kept: it
            # may have run, so it is never run again and the model is told so.
            outcome = ToolOutcome("error", failure("outcome_unknown", OUTCOME_UNKNOWN), 0.0)
            await store.record(confirmation_id, outcome)
        elif outcome is None and decision == "approve":
            await store.claim(found, decision)
            tool = next(t for t in tools if t.name == pending.call.name)
            outcome = await self._agent.execute(tool, pending.call.args, context)
            await store.record(confirmation_id, outcome)
        elif outcome is None:
            outcome = ToolOutcome("denied", failure("denied", "the user declined this action"), 0.0)
            await store.claim(found, decision, outcome)
        done = await _answer_of(self._agent.resume(pending, outcome, tools, context, stream=False))
        cid, mid = found.conversation_id, new_id()
        proposal, writes = self._propose(done, caller, cid)
        reply = self._reply(done, cid, mid, request_id, proposal)
        also = [
            store.answered_write(confirmation_id),
            *writes,
            *(seal(reply.model_dump_json().encode()) if seal is not None else ()),
        ]
        await self._store.append_exchange(
            owner=caller.subject,
            conversation_id=cid,
            new_conversation=False,
            message_id=mid,
            user_text=None,
            answer=done.result,
            request_id=request_id,
            retention_days=self._settings.conversation_retention_days or None,
            also=also,
            tool_calls=[stored_call(c) for c in done.calls],
        )
        return reply

    def _require_confirmations(self) -> ConfirmationStore:
        if self._confirmations is None:
            raise errors.Unavailable("confirmations are not configured in this process")
        return self._confirmations

    def _propose(
        self, done: Answer, caller: Caller, conversation_id: str
    ) -> tuple[ConfirmationRequired | None, list[Any]]:
        """The proposal a paused answer carries, and the write storing it (none otherwise)."""
        if done.pending is None:
            return None, []
        store = self._require_confirmations()
        confirmation_id = new_confirmation_id()
        write, expires = store.create_write(
            confirmation_id, caller.subject, conversation_id, done.pending
        )
        proposal = ConfirmationRequired(
            confirmation_id=confirmation_id,
            tool=done.pending.call.name,
            arguments=done.pending.call.args,
            expires_at=expires,
        )
        return proposal, [write]

    @staticmethod
    def _reply(
        done: Answer,
        conversation_id: str,
        message_id: str,
        request_id: str,
        proposal: ConfirmationRequired | None,
        sources: Sequence[Source] = (),
    ) -> ChatResponse:
        return ChatResponse(
            conversation_id=conversation_id,
            message_id=message_id,
            text=done.result.text,
            finish_reason=done.result.finish_reason,
            tool_calls=[tool_call(c) for c in done.calls],
            sources=list(sources),
            data=done.data,
            confirmation=proposal,
            usage=usage_of(done),
            request_id=request_id,
        )

    def _run(
        self, prepared: Prepared, caller: Caller, request_id: str, stream: bool
    ) -> AsyncIterator[Event]:
        if prepared.semantic is not None and prepared.semantic.hit is not None:
            return _replay(answer_of(prepared.semantic.hit))
        context = ToolContext(subject=caller.subject, request_id=request_id)
        return self._agent.run(prepared.request, prepared.tools, context, stream)

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
        held, conversation = await self._intercept(request, caller)
        if held is not None:  # a person, not the model, takes this message
            cid, mid = request.conversation_id or new_id(), message_id or new_id()
            yield (
                "meta",
                MetaEvent(
                    conversation_id=cid,
                    message_id=mid,
                    model=held.result.model,
                    request_id=request_id,
                ),
            )
            await self._store_held(held, request, caller, (cid, mid), request_id, also)
            yield "handoff", held.state
            yield "delta", DeltaEvent(text=held.text)
            yield "usage", held.usage()
            yield "done", DoneEvent(finish_reason=held.result.finish_reason)
            return
        prepared = await self.prepare(request, caller, conversation)
        cid, mid = request.conversation_id or new_id(), message_id or new_id()
        events = self._run(prepared, caller, request_id, stream=True)
        first = await anext(events)
        yield (
            "meta",
            MetaEvent(
                conversation_id=cid,
                message_id=mid,
                model=self._first_model(prepared),
                request_id=request_id,
            ),
        )
        if prepared.sources:
            yield "sources", SourcesEvent(sources=list(prepared.sources))
        done: Answer | None = None
        async for event in _prepend(first, events):
            if isinstance(event, TextPiece):
                yield "delta", DeltaEvent(text=event.text)
            elif isinstance(event, ToolStarted):
                yield (
                    "tool_call",
                    ToolCallEvent(id=event.id, name=event.name, arguments=event.arguments),
                )
            elif isinstance(event, ToolFinished):
                r = event.record
                yield (
                    "tool_result",
                    ToolResultEvent(
                        id=r.id,
                        name=r.name,
                        status=r.status,
                        latency_ms=r.latency_ms,
                        summary=r.summary,
                    ),
                )
                if r.sources:  # what a tool found (retrieve), as it arrives
                    yield "sources", SourcesEvent(sources=[Source(**x) for x in r.sources])
            else:
                done = event
        if done is None:  # pragma: no cover - the loop always ends with its answer
            raise errors.UpstreamError("the model stream ended without a result")
        proposal, writes = self._propose(done, caller, cid)
        await self._store_answer(
            request, caller, (cid, mid), prepared, done, request_id, [*writes, *also]
        )
        self._keep(request, prepared, done, caller)
        await self._count_unsure(request, caller, cid, done)
        if proposal is not None:
            yield "confirmation_required", proposal
        if request.response_schema is not None:
            yield "data", DataEvent(data=done.data)
        yield "usage", usage_of(done)
        yield "done", DoneEvent(finish_reason=done.result.finish_reason)

    def _first_model(self, prepared: Prepared) -> str:
        """The model a stream starts with (a semantic cache hit's, else the tier's first)."""
        if prepared.semantic is not None and prepared.semantic.hit is not None:
            return prepared.semantic.hit.model
        request = prepared.request
        return self._llm.chain(replace(request, tier=self._agent.tier(request)))[0]

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

    async def rate(
        self, caller: Caller, conversation_id: str, message_id: str, body: FeedbackRequest
    ) -> Feedback:
        """Keep the caller's rating of one of its answers (the last one given wins)."""
        kept = body.model_dump(mode="json")
        when = await self._store.rate(conversation_id, message_id, caller.subject, kept)
        return Feedback(
            **kept, conversation_id=conversation_id, message_id=message_id, updated_at=when
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
        tool_calls=[_call_of(c) for c in data.get("tool_calls") or []],
        sources=[Source(**source) for source in data.get("sources") or []],
        feedback=_feedback_of(data.get("feedback")),
    )


def _feedback_of(stored: dict[str, Any] | None) -> FeedbackRequest | None:
    if not stored:
        return None
    return FeedbackRequest(**{k: v for k, v in stored.items() if k != "updated_at"})


async def _replay(answer: Answer) -> AsyncIterator[Event]:
    """A kept answer as the loop's events: its text in one piece, then the answer."""
    yield TextPiece(answer.result.text)
    yield answer


def cited(prepared: Prepared, done: Answer) -> list[Source]:
    """What an answer cites: the chunks retrieved before it, then those its tools found."""
    found = list(prepared.sources)
    seen = {(s.uri, s.section) for s in found}
    for record in done.calls:
        for source in record.sources:
            item = Source(**source)
            if (item.uri, item.section) not in seen:
                seen.add((item.uri, item.section))
                found.append(item)
    return found


def source_of(hit: Hit) -> Source:
    """A retrieved chunk as the contract cites it."""
    return Source(
        uri=hit.uri,
        title=hit.title or None,
        section=hit.section,
        snippet=hit.text[:300],
        score=round(hit.similarity, 4),
    )


def canonical(document: dict[str, Any] | None) -> str | None:
    """A JSON document as the same bytes each time (for the model request and its cache key)."""
    if document is None:
        return None
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def usage_of(done: Answer) -> Usage:
    """The contract's usage of an answer: totals and each model's share."""
    answer = done.result
    return Usage(
        input_tokens=answer.input_tokens,
        output_tokens=answer.output_tokens,
        model=answer.model,
        cached=answer.cached,
        cached_input_tokens=answer.cached_input_tokens,
        cost_usd=round(answer.cost_usd, 8),
        model_calls=done.steps,
        semantic_similarity=done.semantic_similarity,
        models=[
            ModelUsage(
                model=u.model,
                input_tokens=u.input_tokens,
                output_tokens=u.output_tokens,
                calls=u.calls,
                cached_input_tokens=u.cached_input_tokens,
            )
            for u in done.models
        ],
    )


def stored_call(record: CallRecord) -> dict[str, Any]:
    """A tool call as its message stores it: the model's arguments as JSON text (any shape the
    model invents, such as nested lists Firestore cannot hold, is kept as given)."""
    stored = tool_call(record).model_dump(mode="json")
    stored["arguments"] = json.dumps(stored["arguments"], separators=(",", ":"))
    return stored


def _call_of(stored: dict[str, Any]) -> ToolCall:
    arguments = stored.get("arguments")
    if isinstance(arguments, str):
        stored = {**stored, "arguments": json.loads(arguments)}
    return ToolCall(**stored)


def tool_call(record: CallRecord) -> ToolCall:
    return ToolCall(
        id=record.id,
        name=record.name,
        arguments=record.arguments,
        status=record.status,  # type: ignore[arg-type]
        latency_ms=record.latency_ms,
        summary=record.summary,
    )


async def _answer_of(events: AsyncIterator[Event]) -> Answer:
    """The loop's answer, its other events ignored (the JSON answer shows them all at once)."""
    done: Answer | None = None
    async for event in events:
        if isinstance(event, Answer):
            done = event
    assert done is not None  # the loop always ends with its answer
    return done


async def _prepend(first: T, rest: AsyncIterator[T]) -> AsyncIterator[T]:
    """``first``, then the rest of an iterator."""
    yield first
    async for item in rest:
        yield item
