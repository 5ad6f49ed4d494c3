"""The public API contract (v1) as pydantic models; the OpenAPI document is generated from these."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.agent import schema

ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
# Firestore reserves document ids of the form __x__: they are never ours, and never valid input.
RESERVED_ID = re.compile(r"^__.*__\Z", re.DOTALL)
# A character that is neither whitespace nor a control character, for Python and for JSON Schema
# (ECMAScript) regexes alike: a message needs at least one.
NOT_BLANK = r"[^\s\x00-\x1f\x7f-\x9f\ufeff]"


def reserved(value: str | None) -> bool:
    """Whether ``value`` is a document id Firestore reserves (``__name__``, ``__x__``)."""
    return value is not None and RESERVED_ID.match(value) is not None


def _not_reserved(value: str | None) -> str | None:
    if reserved(value):
        raise ValueError("is a reserved id (__…__)")
    return value


class _Contract(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_serialization_defaults_required=True)


TOOL_NAME = r"^[a-z][a-z0-9_]{0,63}$"
CORPUS_TAG = r"^[a-z0-9][a-z0-9_-]{0,31}$"  # a corpus document's tag (as ingested)
LANGUAGE_TAG = r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$"  # the shape of a BCP 47 tag


SchemaType = Literal["string", "number", "integer", "boolean", "array", "object", "null"]
_Count = Annotated[int, Field(ge=0, le=10_000)]
_Bound = Annotated[float, Field(ge=-1e15, le=1e15)]


class ResponseSchema(BaseModel):
    """The JSON Schema subset Gemini accepts for structured answers (keywords as JSON Schema
    spells them). Beyond these fields: ≤ 8 KiB in all, ≤ 8 levels, ≤ 128 properties."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    type: SchemaType | Annotated[list[SchemaType], Field(min_length=1)] | None = None
    properties: dict[str, ResponseSchema] | None = Field(None, max_length=32)
    required: list[str] | None = Field(None, max_length=32)
    items: ResponseSchema | None = None
    enum: list[str | int | float] | None = Field(None, min_length=1, max_length=256)
    any_of: list[ResponseSchema] | None = Field(None, alias="anyOf", min_length=1, max_length=8)
    nullable: bool | None = None
    format: str | None = Field(None, max_length=64)
    title: str | None = Field(None, max_length=256)
    description: str | None = Field(None, max_length=256)
    pattern: str | None = Field(None, max_length=256, json_schema_extra={"format": "regex"})
    minimum: _Bound | None = None
    maximum: _Bound | None = None
    min_items: _Count | None = Field(None, alias="minItems")
    max_items: _Count | None = Field(None, alias="maxItems")
    min_length: _Count | None = Field(None, alias="minLength")
    max_length: _Count | None = Field(None, alias="maxLength")
    min_properties: _Count | None = Field(None, alias="minProperties")
    max_properties: _Count | None = Field(None, alias="maxProperties")
    property_ordering: list[str] | None = Field(None, alias="propertyOrdering", max_length=32)


class ChatRequest(_Contract):
    """Body of `POST /v1/chat` and `POST /v1/chat:stream`."""

    message: str = Field(
        description="The user's message; must not be blank.",
        json_schema_extra={"minLength": 1, "pattern": NOT_BLANK},  # enforced by `_not_blank`
    )
    conversation_id: str | None = Field(
        None, pattern=ID_PATTERN, description="Continue this conversation; omit to start one."
    )
    request_id: str | None = Field(
        None, pattern=ID_PATTERN, description="Client idempotency key (same as Idempotency-Key)."
    )
    tier: Literal["fast", "quality", "auto"] = Field(
        "fast",
        description="Which model tier answers: `auto` answers with the fast model and escalates "
        "to the quality model when the answer looks unsure (low average log-probability, cut "
        "short, blocked, or breaking the response schema).",
    )
    temperature: float | None = Field(
        None,
        ge=0.0,
        le=2.0,
        description="Sampling temperature (default: the service's setting).",
    )
    max_output_tokens: int | None = Field(
        None,
        ge=1,
        le=65536,
        description="Longest answer in tokens; above the service's limit (1024 by default) the "
        "limit applies.",
    )
    language: str | None = Field(
        None,
        max_length=35,
        pattern=LANGUAGE_TAG,
        description="BCP 47 tag of the language to answer in (e.g. `fr`, `pt-BR`).",
    )
    retrieval: Literal["auto", "tool", "off"] | None = Field(
        None,
        description="`auto`: look up the corpus first and answer from it, citing `sources`; "
        "`tool`: offer the model a `retrieve` tool to look it up when it needs to; `off`: no "
        "retrieval. Default: the service's setting.",
    )
    retrieval_tags: list[Annotated[str, Field(pattern=CORPUS_TAG)]] | None = Field(
        None,
        min_length=1,
        max_length=10,
        description="Retrieve only from documents carrying at least one of these tags "
        "(as ingested with `--tag`, or an object's `tags` metadata).",
    )
    tools: list[Annotated[str, Field(pattern=TOOL_NAME)]] | None = Field(
        None,
        max_length=32,
        description="Names of the tools to offer the model: omitted, every tool the caller may "
        "use; `[]`, none. Naming a tool the caller may not use is a 403 naming it.",
    )

    response_schema: ResponseSchema | None = Field(
        None,
        description="A JSON Schema (the subset Gemini accepts): the answer is a JSON document "
        "conforming to it, returned parsed in `data`. An unsupported keyword is a 422 naming it.",
    )

    @field_validator("response_schema", mode="before")
    @classmethod
    def _supported_schema(cls, value: object) -> object:
        """Refused keywords, size and depth first, so the error names what is wrong."""
        if value is not None:
            schema.check(value)
        return value

    def schema_document(self) -> dict[str, Any] | None:
        """The response schema as JSON Schema (as the caller spelled it, unset keys left out)."""
        if self.response_schema is None:
            return None
        found: dict[str, Any] = self.response_schema.model_dump(by_alias=True, exclude_none=True)
        return found

    @field_validator("message")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not re.search(NOT_BLANK, value):
            raise ValueError("must hold text, not only blanks or control characters")
        return value

    _ids = field_validator("conversation_id", "request_id")(_not_reserved)

    @field_validator("temperature", "max_output_tokens", mode="before")
    @classmethod
    def _numbers_only(cls, value: object) -> object:
        """JSON numbers only: ``true`` or ``"1"`` are not numbers (``2.0`` is an integer)."""
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise ValueError("must be a number")
        return value


class ModelUsage(_Contract):
    """What one model spent on an answer (an agent's answer may take several calls)."""

    model: str
    input_tokens: int = 0
    output_tokens: int = 0
    calls: int = 0
    cached_input_tokens: int = 0


class Usage(_Contract):
    """Token accounting for one answer, every model call of it counted; a cached answer costs no
    tokens and says so. ``model`` answered last; ``models`` lists each model used."""

    input_tokens: int = 0
    output_tokens: int = 0
    model: str
    cached: bool = False
    cached_input_tokens: int = Field(
        0, description="input tokens Gemini served from its prompt cache (billed at a discount)"
    )
    cost_usd: float = Field(0.0, description="estimated cost of every model call of the answer")
    model_calls: int = 1
    models: list[ModelUsage] = Field(default_factory=list)
    semantic_similarity: float | None = Field(
        None,
        description="set when the semantic cache answered: how close the question was to the "
        "one this answer was made for (cosine, 1 is identical)",
    )


ToolStatus = Literal[
    "ok", "error", "timeout", "refused", "invalid_arguments", "denied", "awaiting_confirmation"
]


class ToolCall(_Contract):
    """A tool the agent called for this answer: its arguments, outcome and a line of result."""

    id: str
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    status: ToolStatus = "ok"
    latency_ms: float = 0.0
    summary: str = Field("", description="the result (or error) as JSON, cut to 240 characters")


class Source(_Contract):
    """A document the answer drew on (retrieval): cite it as [n], n its place in the list."""

    uri: str
    title: str | None = None
    section: str = ""
    snippet: str = Field("", description="the start of the chunk given to the model")
    score: float = Field(0.0, description="cosine similarity of the chunk to the question")


class ConfirmationRequired(_Contract):
    """A proposed call of a tool that acts (a payment, a cancellation): it runs only once the user
    approves it with `POST /v1/confirmations/{confirmation_id}`."""

    confirmation_id: str
    tool: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    expires_at: datetime


class ConfirmationDecision(_Contract):
    """Body of `POST /v1/confirmations/{confirmation_id}`."""

    decision: Literal["approve", "deny"]


HandoffStatus = Literal["pending", "active", "closed"]
HandoffReason = Literal["user_asked", "agent", "unsure_answers"]


class HandoffState(_Contract):
    """Where a conversation's hand-off to a person stands: while ``pending`` or ``active`` the
    agent does not answer it; operators' replies arrive as ``operator`` messages."""

    status: HandoffStatus
    reason: HandoffReason
    requested_at: datetime
    updated_at: datetime


class ChatResponse(_Contract):
    """Body of a successful `POST /v1/chat` (and of a confirmation's decision)."""

    conversation_id: str
    message_id: str
    text: str
    finish_reason: str = "STOP"
    tool_calls: list[ToolCall] = Field(default_factory=list)
    sources: list[Source] = Field(default_factory=list)
    data: Any | None = Field(
        None, description="the answer parsed, when the request set `response_schema`"
    )
    confirmation: ConfirmationRequired | None = Field(
        None,
        description="set when the agent proposes an action the user must approve "
        "(finish_reason `confirmation_required`)",
    )
    handoff: HandoffState | None = Field(
        None,
        description="set when the conversation is with a person (finish_reason `handoff`): "
        "no model answered; a person will reply in the conversation",
    )
    usage: Usage
    request_id: str


class PageQuery(_Contract):
    """Query parameters of the paginated reads."""

    page_size: int = Field(20, ge=1, le=100)
    page_token: str | None = Field(None, pattern=r"^[A-Za-z0-9_-]{1,80}$")

    _token = field_validator("page_token")(_not_reserved)


class ConversationSummary(_Contract):
    conversation_id: str
    title: str
    created_at: datetime
    updated_at: datetime
    message_count: int


class ConversationPage(_Contract):
    """Body of `GET /v1/conversations`: newest first."""

    conversations: list[ConversationSummary]
    next_page_token: str | None = None


class MessageItem(_Contract):
    message_id: str
    role: Literal["user", "model", "operator"] = Field(
        description="`operator`: a person's reply during a hand-off"
    )
    text: str
    created_at: datetime
    model: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    tool_calls: list[ToolCall] = Field(default_factory=list)
    sources: list[Source] = Field(default_factory=list)
    feedback: FeedbackRequest | None = Field(None, description="the owner's rating of an answer")


FeedbackReason = Literal[
    "correct",
    "helpful",
    "well_cited",
    "incorrect",
    "incomplete",
    "unhelpful",
    "unsafe",
    "too_long",
    "not_cited",
    "wrong_language",
    "other",
]
COMMENT_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # newlines and tabs allowed


class FeedbackRequest(_Contract):
    """Body of `POST /v1/conversations/{id}/messages/{id}/feedback`: a rating of one answer,
    thumbs or stars (exactly one), optional reasons from a fixed list and a short comment."""

    # One schema as a request and inside a message, where it is shown as the owner gave it.
    model_config = ConfigDict(json_schema_serialization_defaults_required=False)

    thumbs: Literal["up", "down"] | None = None
    stars: int | None = Field(None, ge=1, le=5)
    reasons: list[FeedbackReason] = Field(default_factory=list, max_length=5)
    comment: str | None = Field(None, max_length=1000)

    @field_validator("reasons")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("each reason at most once")
        return value

    @field_validator("comment")
    @classmethod
    def _printable(cls, value: str | None) -> str | None:
        if value is not None and COMMENT_CONTROL.search(value):
            raise ValueError("must not hold control characters")
        return value

    def model_post_init(self, _: Any) -> None:
        if (self.thumbs is None) == (self.stars is None):
            raise ValueError("give exactly one of thumbs or stars")


class Feedback(FeedbackRequest):
    """A rating as stored on an answer (the last one given wins), and when it was given."""

    model_config = ConfigDict(json_schema_serialization_defaults_required=True)

    conversation_id: str
    message_id: str
    updated_at: datetime


class ConversationDetail(_Contract):
    """Body of `GET /v1/conversations/{id}`: its messages, newest first."""

    conversation: ConversationSummary
    messages: list[MessageItem]
    next_page_token: str | None = None


class Deleted(_Contract):
    """Body of `DELETE /v1/conversations/{id}`."""

    conversation_id: str
    deleted_messages: int


class Erased(_Contract):
    """Body of `DELETE /v1/me`: what was deleted of the caller (named by its pseudonym)."""

    subject: str = Field(description="the caller's pseudonym, as logs and the ledger name it")
    erased_at: str = Field(description="RFC 3339; restores of older backups leave the caller out")
    conversations: int
    messages: int
    idempotency_records: int
    confirmations: int = 0
    corpus_documents: int = 0
    jobs: int = 0
    exports: int = Field(0, description="data export archives")
    api_keys: int
    memorystore_keys: int


class HandoffItem(_Contract):
    """One hand-off as operators list it (`GET /v1/handoffs`)."""

    conversation_id: str
    owner: str = Field(description="the user's pseudonym, as logs and the ledger name it")
    title: str
    handoff: HandoffState


class HandoffQuery(_Contract):
    """Query of `GET /v1/handoffs`: one status, or the open ones (pending and active)."""

    status: HandoffStatus | None = None


class HandoffList(_Contract):
    handoffs: list[HandoffItem]


class OperatorReply(_Contract):
    """Body of `POST /v1/handoffs/{conversation_id}/messages`: a person's reply."""

    text: str = Field(min_length=1, max_length=4000, json_schema_extra={"pattern": NOT_BLANK})

    @field_validator("text")
    @classmethod
    def _printable(cls, value: str) -> str:
        if COMMENT_CONTROL.search(value) or not re.search(NOT_BLANK, value):
            raise ValueError("must be printable text, not blank")
        return value


class OperatorMessage(_Contract):
    """A person's reply in a conversation (also the sessions' ``operator_message`` event)."""

    conversation_id: str
    message_id: str
    text: str
    created_at: datetime


class HandoffClosed(_Contract):
    """A hand-off ended: the agent answers the conversation again (sessions' ``handoff``)."""

    conversation_id: str
    status: HandoffStatus


JobStatus = Literal["queued", "running", "succeeded", "failed"]


class JobView(_Contract):
    """A job run by the worker (`GET /v1/jobs/{job_id}`; `POST /v1/me/export` answers one)."""

    job_id: str
    kind: Literal["export", "ingest"]
    status: JobStatus
    created_at: datetime
    updated_at: datetime
    attempts: int = Field(0, description="runs started so far (a failed run is retried)")
    error: str | None = Field(None, description="why the last run failed")
    result: dict[str, Any] | None = Field(
        None,
        description="export: the archive's size and its documents per collection; ingest: the "
        "ingestion's outcome",
    )
    download_url: str | None = Field(
        None, description="export, once succeeded: a short-lived link to the JSON archive"
    )
    download_expires_at: datetime | None = None


class Liveness(_Contract):
    """Body of `GET /healthz`: the process is up and serving (dependencies are not checked)."""

    status: Literal["ok"] = "ok"


class Readiness(_Contract):
    """Body of a 200 `GET /readyz`: each dependency answered within a second, or an optional one
    (Redis) did not and the function serves without it (``degraded``: no cache, local limits)."""

    status: Literal["ready", "degraded"]
    checks: dict[str, Annotated[str, Field(pattern=r"^(ok|degraded \(.+\))$")]] = Field(
        description="each dependency checked (redis, firestore, vertex): `ok`, or `degraded "
        "(<error>)` for an optional one that failed"
    )


class ErrorBody(_Contract):
    code: str
    message: str
    details: list[dict[str, Any]] = Field(default_factory=list)
    request_id: str


class ErrorEnvelope(_Contract):
    """Every error response body, on every route."""

    error: ErrorBody


# --- Server-Sent Events of `POST /v1/chat:stream` (event name → data model) ---


class MetaEvent(_Contract):
    conversation_id: str
    message_id: str
    model: str
    request_id: str


class DeltaEvent(_Contract):
    text: str


class DoneEvent(_Contract):
    finish_reason: str = Field(
        "STOP",
        description="the model's (STOP, MAX_TOKENS, SAFETY…) or a loop bound: max_steps, deadline",
    )


class ToolCallEvent(_Contract):
    """The agent calls a tool (its result follows as `tool_result` with the same id)."""

    id: str
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class ToolResultEvent(_Contract):
    """A tool call finished."""

    id: str
    name: str
    status: ToolStatus
    latency_ms: float
    summary: str


class SourcesEvent(_Contract):
    """The documents the answer draws on, sent before its text (retrieval `auto`)."""

    sources: list[Source]


class DataEvent(_Contract):
    """The structured answer, parsed (requests with `response_schema`), before `usage`."""

    data: Any


STREAM_EVENTS: dict[str, type[BaseModel]] = {
    "meta": MetaEvent,
    "sources": SourcesEvent,
    "delta": DeltaEvent,
    "tool_call": ToolCallEvent,
    "tool_result": ToolResultEvent,
    "data": DataEvent,
    "confirmation_required": ConfirmationRequired,
    "handoff": HandoffState,
    "usage": Usage,
    "done": DoneEvent,
    "error": ErrorEnvelope,
}
