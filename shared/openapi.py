"""The OpenAPI 3.1 document of the public API, built from the function registry and the contracts.

Every route of a public function (`shared.registry`) is an operation, documented by its entry in
`OPERATIONS` (keyed by the route's ``operation``): summary, parameters, body, answers with examples
built from model instances (so they cannot drift from the schemas) and the errors it can answer. A
route without an entry, or an entry without a route, fails the build. Path parameters come from
the route's template, scopes and servers from the registry, error statuses from `shared.errors`.

``python -m shared.openapi > docs/openapi.json`` (or ``make openapi``) regenerates the committed
copy; a test fails when they drift apart. Mobile teams generate their clients from it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from shared import errors, registry
from shared.contracts import (
    ID_PATTERN,
    STREAM_EVENTS,
    ChatRequest,
    ChatResponse,
    ConfirmationDecision,
    ConfirmationRequired,
    ConversationDetail,
    ConversationPage,
    ConversationSummary,
    Deleted,
    DeltaEvent,
    DoneEvent,
    Erased,
    ErrorBody,
    ErrorEnvelope,
    Feedback,
    FeedbackRequest,
    HandoffClosed,
    HandoffItem,
    HandoffList,
    HandoffState,
    JobView,
    Liveness,
    MessageItem,
    MetaEvent,
    ModelUsage,
    OperatorMessage,
    OperatorReply,
    PageQuery,
    Readiness,
    Source,
    ToolCall,
    Usage,
)
from shared.idempotency import MAX_KEY_CHARS
from shared.sessions.protocol import SESSION_EVENTS

VERSION = "1.0.0"


class DocumentError(RuntimeError):
    """The registry and `OPERATIONS` disagree; the message names each route or entry at fault."""


@dataclass(frozen=True)
class Reply:
    """A non-error answer of an operation. ``examples`` (model instances, or SSE events built from
    them) give the body and, unless ``schema`` is set, its schema; none means no body."""

    status: int
    description: str
    examples: Mapping[str, Any] = field(default_factory=dict)
    media_type: str = "application/json"
    schema: dict[str, Any] | None = None
    headers: tuple[str, ...] = ()  # names in components/headers, beyond the request id


@dataclass(frozen=True)
class Operation:
    """How one route is documented. ``raises`` lists what its handler may raise; the guard's (a
    route with a scope), the body's (``request``), the query's and the internal error are added."""

    operation_id: str  # the name generated clients call: never rename one
    summary: str
    replies: tuple[Reply, ...]
    raises: tuple[type[errors.AppError], ...] = ()
    description: str | None = None
    request: BaseModel | None = None  # an example body; its model is the body's schema
    parameters: tuple[dict[str, Any], ...] = ()  # header and query ones (path ones: the template)
    error_examples: tuple[errors.AppError, ...] = ()  # an example envelope for these codes


# --- Parameters and headers, one name per idea ---

PATH_PARAMETERS: dict[str, tuple[str, str, str]] = {  # template name → component, pattern, text
    "conversation_id": ("ConversationId", ID_PATTERN, "One of the caller's conversations."),
    "message_id": ("MessageId", ID_PATTERN, "An answer in the conversation."),
    "confirmation_id": (
        "ConfirmationId",
        r"^cf_[A-Za-z0-9]{16}$",
        "A proposed action, from the answer's `confirmation`.",
    ),
    "job_id": ("JobId", r"^job_[a-z0-9]{20}$", "A job of the caller's."),
}


def _query(name: str) -> dict[str, Any]:
    """A query parameter of the paginated reads, its schema taken from `PageQuery` (one source)."""
    field = PageQuery.model_json_schema()["properties"][name]
    schema = {
        key: field[key]
        for key in ("type", "minimum", "maximum", "default", "pattern")
        if key in field
    }
    if "anyOf" in field:  # optional: the non-null branch
        schema = next(branch for branch in field["anyOf"] if branch.get("type") != "null")
    return {"name": name, "in": "query", "required": False, "schema": schema}


PARAMETERS: dict[str, dict[str, Any]] = {
    "RequestId": {
        "name": "X-Request-Id",
        "in": "header",
        "required": False,
        "description": (
            "Echoed back when it is 1-128 characters of [A-Za-z0-9._:-]; any other value is "
            "replaced by a generated id."
        ),
        "schema": {"type": "string"},
    },
    "PageSize": _query("page_size"),
    "PageToken": {
        **_query("page_token"),
        "description": "The `next_page_token` of the previous page.",
    },
    **{
        component: {
            "name": name,
            "in": "path",
            "required": True,
            "description": text,
            "schema": {"type": "string", "pattern": pattern},
        }
        for name, (component, pattern, text) in PATH_PARAMETERS.items()
    },
}
HEADERS: dict[str, dict[str, Any]] = {
    "RequestId": {"schema": {"type": "string"}, "description": "The request's id, as logged."},
    "RateLimitLimit": {"schema": {"type": "integer"}},
    "RateLimitRemaining": {"schema": {"type": "integer"}},
    "RateLimitReset": {"schema": {"type": "integer"}},
    "RetryAfter": {
        "schema": {"type": "integer", "minimum": 1},
        "description": "Seconds to wait before trying again, when waiting helps.",
    },
    "Location": {"schema": {"type": "string"}, "description": "Where to poll the job."},
}
HEADER_NAMES = {"RateLimitLimit": "RateLimit-Limit", "RateLimitRemaining": "RateLimit-Remaining"}
HEADER_NAMES |= {"RateLimitReset": "RateLimit-Reset", "RetryAfter": "Retry-After"}
HEADER_NAMES |= {"RequestId": "X-Request-Id", "Location": "Location"}
RATE_LIMIT_HEADERS = ("RateLimitLimit", "RateLimitRemaining", "RateLimitReset")
RETRY_STATUSES = frozenset({409, 429, 502, 503})  # errors that may carry Retry-After
IDEMPOTENCY_KEY_SCHEMA = {"type": "string", "minLength": 1, "maxLength": MAX_KEY_CHARS}

# What every route of a kind can answer, beyond its own handler's errors.
GUARD_ERRORS = (
    errors.Unauthenticated,
    errors.PermissionDenied,
    errors.RateLimited,
    errors.Unavailable,  # credentials cannot be checked right now
)
BODY_ERRORS = (
    errors.InvalidJson,
    errors.PayloadTooLarge,
    errors.UnsupportedMediaType,
    errors.ValidationFailed,
)
MODEL_ERRORS = (
    errors.BadRequest,
    errors.TokenBudgetExceeded,
    errors.UpstreamError,
    errors.InvalidModelOutput,
    errors.ModelNotFound,
    errors.ModelUnavailable,
    errors.CircuitOpen,
    errors.UpstreamTimeout,
)

SSE_EVENT = {
    "type": "object",
    "description": "One event; `data` is the JSON of the model its `event` names.",
    "required": ["event", "id", "data"],
    "properties": {
        "event": {"enum": list(STREAM_EVENTS)},
        "id": {"type": "string", "pattern": r"^[A-Za-z0-9_-]{1,64}:\d{1,9}$"},
        "data": {"type": "string", "contentMediaType": "application/json"},
    },
}


# --- Examples: model instances, dumped as JSON when the document is built ---

AT = datetime(2026, 12, 7, 9, 30, tzinfo=UTC)
LATER = datetime(2026, 12, 7, 9, 31, 12, tzinfo=UTC)
CONVERSATION_ID = "019af3c2b5e1a4c9e07d21f3"
MESSAGE_ID = "019af3c2b9d07f15b2a8c4e6"
REQUEST_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
STREAM_ID = "019af3c2b9d0a1b2c3d4e5f6"
CONFIRMATION_ID = "cf_Q7x2Lm9Pz4Rt8Vw1"
JOB_ID = "job_k3m9x2p7q4r8t1v5w6y0"
SUBJECT = "u_5f0e2b7c9a1d4e8f"
USAGE = Usage(
    input_tokens=412,
    output_tokens=38,
    model="gemini-2.5-flash",
    cost_usd=0.00022,
    model_calls=2,
    models=[ModelUsage(model="gemini-2.5-flash", input_tokens=412, output_tokens=38, calls=2)],
)
ORDER_CALL = ToolCall(
    id="call_1",
    name="order_status",
    arguments={"order_id": "1042"},
    latency_ms=84.2,
    summary='{"order_id": "1042", "status": "shipped", "eta": "2026-12-08"}',
)
ANSWER = ChatResponse(
    conversation_id=CONVERSATION_ID,
    message_id=MESSAGE_ID,
    text="Order 1042 shipped on 5 December and should arrive tomorrow [1].",
    tool_calls=[ORDER_CALL],
    sources=[
        Source(
            uri="gs://ngx-corpus/help/shipping.md",
            title="Shipping times",
            section="Delivery",
            snippet="Standard delivery takes 2-3 working days after dispatch.",
            score=0.83,
        )
    ],
    usage=USAGE,
    request_id=REQUEST_ID,
)
PROPOSAL = ANSWER.model_copy(
    update={
        "text": "I can cancel order 1042 for you: shall I?",
        "finish_reason": "confirmation_required",
        "tool_calls": [
            ORDER_CALL.model_copy(
                update={
                    "id": "call_2",
                    "name": "cancel_order",
                    "status": "awaiting_confirmation",
                    "latency_ms": 0.0,
                    "summary": "",
                }
            )
        ],
        "sources": [],
        "confirmation": ConfirmationRequired(
            confirmation_id=CONFIRMATION_ID,
            tool="cancel_order",
            arguments={"order_id": "1042"},
            expires_at=LATER,
        ),
    }
)
QUESTION = ChatRequest(message="Where is my order 1042?", tier="fast", language="en")
SUMMARY = ConversationSummary(
    conversation_id=CONVERSATION_ID,
    title="Where is my order 1042?",
    created_at=AT,
    updated_at=LATER,
    message_count=2,
)
RATING = FeedbackRequest(thumbs="up", reasons=["helpful", "correct"], comment="Quick and clear.")
HANDOFF = HandoffState(status="pending", reason="user_asked", requested_at=AT, updated_at=AT)
QUEUED_EXPORT = JobView(job_id=JOB_ID, kind="export", status="queued", created_at=AT, updated_at=AT)
DONE_EXPORT = JobView(
    job_id=JOB_ID,
    kind="export",
    status="succeeded",
    created_at=AT,
    updated_at=LATER,
    attempts=1,
    result={"bytes": 48213, "documents": {"conversations": 3, "messages": 18, "feedback": 2}},
    download_url="https://storage.googleapis.com/ngx-exports/job_k3m9x2p7q4r8t1v5w6y0.json?X-Goog-Signature=…",
    download_expires_at=datetime(2026, 12, 7, 10, 31, 12, tzinfo=UTC),
)
# Error envelopes with telling details; other codes get their description as the message.
ERROR_EXAMPLES: dict[str, errors.AppError] = {
    "validation_failed": errors.ValidationFailed(
        "invalid request: message: Field required",
        details=[{"field": "message", "issue": "Field required"}],
    ),
    "method_not_allowed": errors.MethodNotAllowed(
        "PUT is not allowed on /v1/chat", details=[{"allow": ["POST"]}]
    ),
    "rate_limited": errors.RateLimited("rate limit of 60 requests per minute reached"),
    "token_budget_exceeded": errors.TokenBudgetExceeded(
        "daily token budget of 200000 is spent (199870 used, 0 reserved; this request may need "
        "1436)",
        details=[{"limit": 200000, "used": 199870}],
    ),
}


def _sse(seq: int, name: str, data: BaseModel) -> dict[str, str]:
    """A stream event as the SSE schema describes it (``data`` as sent: the model's JSON)."""
    return {"event": name, "id": f"{STREAM_ID}:{seq}", "data": data.model_dump_json()}


CHAT_IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": (
        "Replays return the first answer byte for byte, without a second model call (kept for "
        "idempotency_ttl_h, 24 h by default; the answer is stored in the same commit as its "
        "exchange). A replay while the first request runs waits for it, then answers 409 with "
        "Retry-After; the same key with another body is 422. If the first request's instance "
        "died, a replay after idempotency_lease_s (600 s) runs it again."
    ),
    "schema": IDEMPOTENCY_KEY_SCHEMA,
}
STREAM_IDEMPOTENCY_KEY = {
    **CHAT_IDEMPOTENCY_KEY,
    "description": (
        "As on chat, with events: one model call and one stored exchange per key. A replay "
        "while the first stream runs receives that stream from its first event; a replay after "
        "it finished receives its events as sent (ids included). The same key with another body "
        "(or on chat) is 422; a replay of a first request that failed before its first event is "
        "409."
    ),
}
PAGE = ({"$ref": "#/components/parameters/PageSize"}, {"$ref": "#/components/parameters/PageToken"})


OPERATIONS: dict[str, Operation] = {
    "post_chat": Operation(
        "chat",
        "Answer a message (JSON)",
        (Reply(200, "The answer", {"answer": ANSWER, "confirmation": PROPOSAL}),),
        (*MODEL_ERRORS, errors.NotFound, errors.Conflict),
        request=QUESTION,
        parameters=(CHAT_IDEMPOTENCY_KEY,),
    ),
    "post_stream": Operation(
        "chatStream",
        "Answer a message as Server-Sent Events",
        (
            Reply(
                200,
                "The event stream",
                {
                    "meta": _sse(
                        1,
                        "meta",
                        MetaEvent(
                            conversation_id=CONVERSATION_ID,
                            message_id=MESSAGE_ID,
                            model="gemini-2.5-flash",
                            request_id=REQUEST_ID,
                        ),
                    ),
                    "delta": _sse(2, "delta", DeltaEvent(text="Order 1042 shipped on ")),
                    "usage": _sse(9, "usage", USAGE),
                    "done": _sse(10, "done", DoneEvent()),
                },
                media_type="text/event-stream",
                schema=SSE_EVENT,
            ),
        ),
        (*MODEL_ERRORS, errors.NotFound, errors.Conflict),
        description=(
            "Events: `meta` (MetaEvent), then `delta` (DeltaEvent) and, when the agent calls "
            "tools, `tool_call` (ToolCallEvent) and `tool_result` (ToolResultEvent) in the order "
            "they happen; `confirmation_required` (ConfirmationRequired) when it proposes an "
            "action; `handoff` (HandoffState) when a person, not the model, takes the message; "
            "`data` (DataEvent) with `response_schema`; then `usage` (Usage) and `done` "
            "(DoneEvent) — or `error` (ErrorEnvelope). Every event has an `id`; after a dropped "
            "connection, send the request again with `Last-Event-ID` to receive the rest (the "
            "body is then ignored). Errors before the first event are HTTP errors."
        ),
        request=QUESTION,
        parameters=(
            {
                "name": "Last-Event-ID",
                "in": "header",
                "required": False,
                "description": "Resume after this event; empty means a new stream.",
                "schema": {"type": "string", "pattern": r"^([A-Za-z0-9_-]{1,64}:\d{1,9})?$"},
            },
            STREAM_IDEMPOTENCY_KEY,
        ),
    ),
    "open_session": Operation(
        "openSession",
        "Open a WebSocket session (protocol: docs/asyncapi.json)",
        (
            Reply(101, "Switching Protocols: the session runs"),
            Reply(403, "A browser page of an origin not allowed (no body)"),
        ),
        description=(
            "A WebSocket handshake with subprotocol `ngx.v1`. Authenticate with a second offered "
            "subprotocol `ngx.bearer.<ID token>` or `ngx.key.<API key>` (never echoed back), or "
            'with a first message `{"type": "auth"}` within session_auth_timeout_s; never in the '
            "query string. Then send `chat` (the body of POST /v1/chat), `cancel`, `resume` "
            "(Last-Event-ID of any stream) and `ping`; events mirror the stream's Server-Sent "
            "Events. Close codes: 4000 reconnect (time limit), 4001 slow consumer, 4002 idle, "
            "4401 unauthenticated, 4403 forbidden, 1009 frame over 1 MiB."
        ),
        parameters=(
            {
                "name": "Sec-WebSocket-Protocol",
                "in": "header",
                "required": False,
                "description": "`ngx.v1`, optionally with the credential.",
                "schema": {"type": "string"},
            },
        ),
    ),
    "post_confirmation": Operation(
        "decideConfirmation",
        "Approve or deny an action the agent proposed",
        (
            Reply(
                200,
                "The agent's answer after the decision",
                {
                    "approved": ANSWER.model_copy(
                        update={"text": "Done: order 1042 is cancelled.", "sources": []}
                    )
                },
            ),
        ),
        (*MODEL_ERRORS, errors.NotFound, errors.Conflict, errors.Gone),
        description=(
            "A tool declared `confirm = true` is not run when the model calls it: the answer "
            "carries `confirmation` (and finish_reason `confirmation_required`). Approving runs "
            "the call once (never twice) and the agent goes on; denying tells the model the user "
            "declined. The first decision counts: sending it again returns the same answer, the "
            "other decision is 422 (409 once the replay record is gone). Owner only; expires "
            "after confirmation_ttl_s (410)."
        ),
        request=ConfirmationDecision(decision="approve"),
    ),
    "list_conversations": Operation(
        "listConversations",
        "The caller's conversations, most recently updated first",
        (Reply(200, "A page", {"page": ConversationPage(conversations=[SUMMARY])}),),
        parameters=PAGE,
    ),
    "get_conversation": Operation(
        "getConversation",
        "A conversation and its messages, newest first",
        (
            Reply(
                200,
                "A page of messages",
                {
                    "page": ConversationDetail(
                        conversation=SUMMARY,
                        messages=[
                            MessageItem(
                                message_id=MESSAGE_ID,
                                role="model",
                                text=ANSWER.text,
                                created_at=LATER,
                                model="gemini-2.5-flash",
                                input_tokens=412,
                                output_tokens=38,
                                tool_calls=[ORDER_CALL],
                                feedback=RATING,
                            ),
                            MessageItem(
                                message_id=f"{MESSAGE_ID}-q",
                                role="user",
                                text=QUESTION.message,
                                created_at=AT,
                            ),
                        ],
                    )
                },
            ),
        ),
        (errors.NotFound,),
        parameters=PAGE,
    ),
    "delete_conversation": Operation(
        "deleteConversation",
        "Delete a conversation and every message in it",
        (
            Reply(
                200,
                "Deleted",
                {"deleted": Deleted(conversation_id=CONVERSATION_ID, deleted_messages=2)},
            ),
        ),
        (errors.NotFound,),
    ),
    "post_feedback": Operation(
        "rateAnswer",
        "Rate one of the caller's answers: thumbs or 1–5 stars",
        (
            Reply(
                200,
                "The rating as kept",
                {
                    "rating": Feedback(
                        **RATING.model_dump(),
                        conversation_id=CONVERSATION_ID,
                        message_id=MESSAGE_ID,
                        updated_at=LATER,
                    )
                },
            ),
        ),
        (errors.NotFound,),
        description=(
            "Exactly one of `thumbs` or `stars`, up to five distinct `reasons` from a fixed list, "
            "an optional comment (1,000 characters, no control characters). The last rating "
            "given wins. Owner only: another user's conversation or message is 404; a user's own "
            "message is 422. Erased with the user and deleted with the conversation."
        ),
        request=RATING,
    ),
    "erase_me": Operation(
        "eraseMe",
        "Erase everything stored about the caller (right to be forgotten)",
        (
            Reply(
                200,
                "Erased",
                {
                    "erased": Erased(
                        subject=SUBJECT,
                        erased_at="2026-12-07T09:31:12Z",
                        conversations=3,
                        messages=18,
                        idempotency_records=5,
                        confirmations=1,
                        jobs=1,
                        exports=1,
                        api_keys=0,
                        memorystore_keys=12,
                    )
                },
            ),
        ),
        description=(
            "Deletes the caller's conversations and messages, idempotency records, API keys, "
            "cache entries its requests filled, stream buffers, and token budget and rate limit "
            "counters, and records the erasure in a ledger that restores honour. Backups taken "
            "before it age out after backup_keep_days. Running it again is harmless. Every "
            "user's ID token has the `account` scope; an API key only when created with it "
            "(`agentctl keys create --scope account`)."
        ),
    ),
    "export_me": Operation(
        "exportMe",
        "Export everything stored about the caller (a job)",
        (
            Reply(202, "The export job, queued", {"queued": QUEUED_EXPORT}, headers=("Location",)),
            Reply(
                200,
                "The export job already queued or running",
                {"running": QUEUED_EXPORT.model_copy(update={"status": "running", "attempts": 1})},
                headers=("Location",),
            ),
        ),
        description=(
            "Queues an export job (202, `Location: /v1/jobs/{job_id}`): the worker writes a JSON "
            "archive of exactly what `DELETE /v1/me` would delete (API key hashes and retrieval "
            "vectors left out). While one is queued or running, the same job is returned (200). "
            "Poll the job, or watch a WebSocket session for its `job` event; once succeeded it "
            "carries a short-lived `download_url`."
        ),
    ),
    "get_job": Operation(
        "getJob",
        "One of the caller's jobs",
        (Reply(200, "The job", {"succeeded": DONE_EXPORT}),),
        (errors.NotFound,),
        description=(
            "Status (queued, running, succeeded, failed), attempts, the last error, the result; "
            "a succeeded export carries `download_url`, valid until `download_expires_at` (read "
            "the job again for a new one). Another user's job is 404."
        ),
    ),
    "list_handoffs": Operation(
        "listHandoffs",
        "Hand-offs to a person (support staff)",
        (
            Reply(
                200,
                "Hand-offs",
                {
                    "open": HandoffList(
                        handoffs=[
                            HandoffItem(
                                conversation_id=CONVERSATION_ID,
                                owner=SUBJECT,
                                title=SUMMARY.title,
                                handoff=HANDOFF,
                            )
                        ]
                    )
                },
            ),
        ),
        description=(
            "Open hand-offs (pending and active), or those of one `status`, oldest request "
            "first. A hand-off starts when a user asks for a person, when the agent calls its "
            "`handoff` tool, or after handoff_after_unsure unsure answers in a row; meanwhile "
            "the model does not answer that conversation."
        ),
        parameters=(
            {
                "name": "status",
                "in": "query",
                "required": False,
                "schema": {"enum": ["pending", "active", "closed"]},
            },
        ),
    ),
    "reply_handoff": Operation(
        "replyHandoff",
        "Reply to the user as a person",
        (
            Reply(
                201,
                "The reply, stored",
                {
                    "reply": OperatorMessage(
                        conversation_id=CONVERSATION_ID,
                        message_id="019af3c3a0c4d2e1f0a9b8c7",
                        text="Hi, I'm Sam from support: your parcel is with the courier.",
                        created_at=LATER,
                    )
                },
            ),
        ),
        (errors.NotFound,),
        description=(
            "Stored in the conversation as an `operator` message and shown at once on the "
            "user's open WebSocket sessions (`operator_message`). The hand-off becomes `active`. "
            "404 when the conversation has no open hand-off."
        ),
        request=OperatorReply(text="Hi, I'm Sam from support: your parcel is with the courier."),
    ),
    "close_handoff": Operation(
        "closeHandoff",
        "Give the conversation back to the agent",
        (
            Reply(
                200,
                "The hand-off, closed",
                {"closed": HandoffClosed(conversation_id=CONVERSATION_ID, status="closed")},
            ),
        ),
        (errors.NotFound,),
    ),
    "healthz": Operation(
        "healthz",
        "Liveness: the process serves",
        (Reply(200, "Serving", {"ok": Liveness()}),),
    ),
    "readyz": Operation(
        "readyz",
        "Readiness: the function's dependencies answer now",
        (
            Reply(
                200,
                "Ready, or serving without an optional dependency (Redis: no cache, local limits)",
                {
                    "ready": Readiness(
                        status="ready", checks={"redis": "ok", "firestore": "ok", "vertex": "ok"}
                    ),
                    "degraded": Readiness(
                        status="degraded",
                        checks={
                            "redis": "degraded (TimeoutError)",
                            "firestore": "ok",
                            "vertex": "ok",
                        },
                    ),
                },
            ),
        ),
        (errors.Unavailable,),
        description=(
            "Each dependency is checked in turn with a 1 s timeout; a required one that fails "
            "makes it 503 `unavailable`, its `details` naming each (`dependency`, `error`)."
        ),
        error_examples=(
            errors.Unavailable(
                "not ready: vertex", details=[{"dependency": "vertex", "error": "TimeoutError"}]
            ),
        ),
    ),
}


# --- Building the document ---

Routes = dict[tuple[str, str], tuple[registry.RouteSpec, tuple[registry.FunctionSpec, ...]]]


def public_routes() -> Routes:
    """Each route of the public functions once, with the functions serving it (registry order)."""
    found: Routes = {}
    for spec in registry.FUNCTIONS:
        if spec.access != "public":
            continue
        for route in spec.routes:
            key = (route.method, route.path)
            known, specs = found.get(key, (route, ()))
            if known != route:
                raise DocumentError(
                    f"{route.method} {route.path} differs between {specs[0].name} and {spec.name}"
                )
            found[key] = (route, (*specs, spec))
    return found


def undocumented() -> list[str]:
    """Routes of the public functions with no entry in `OPERATIONS`, and entries with no route."""
    routes = public_routes().values()
    missing = [
        f"{route.method} {route.path} ({', '.join(s.name for s in specs)}: operation "
        f"{route.operation!r}) has no entry in shared.openapi.OPERATIONS"
        for route, specs in routes
        if route.operation not in OPERATIONS
    ]
    served = {route.operation for route, _ in routes}
    stale = [
        f"OPERATIONS[{name!r}] documents no route of a public function"
        for name in OPERATIONS
        if name not in served
    ]
    return missing + stale


def _server(spec: registry.FunctionSpec) -> dict[str, str]:
    """Where a function answers in the local stack (its registry port)."""
    url = f"http://127.0.0.1:{spec.local_port}"
    return {"url": url, "description": f"{spec.name} function (local stack)"}


def _text(kind: type[errors.AppError]) -> str:
    """An error's meaning, from its docstring, as one line of Markdown."""
    if kind is errors.AppError:
        return "An internal error (a defect): nothing to fix in the request; report its id."
    doc = kind.__doc__
    if not doc:
        raise DocumentError(f"errors.{kind.__name__} has no docstring to document it")
    return " ".join(doc.split()).replace("``", "`")


def _envelope(exc: errors.AppError) -> dict[str, Any]:
    """The body `shared.web` answers for ``exc``."""
    body = ErrorBody(code=exc.code, message=exc.message, details=exc.details, request_id=REQUEST_ID)
    return ErrorEnvelope(error=body).model_dump(mode="json")


def _dump(example: Any) -> Any:
    return example.model_dump(mode="json") if isinstance(example, BaseModel) else example


def _header_refs(names: tuple[str, ...]) -> dict[str, Any]:
    return {HEADER_NAMES[name]: {"$ref": f"#/components/headers/{name}"} for name in names}


class _Builder:
    """Turns routes and their `Operation`s into OpenAPI operations, collecting the models whose
    schemas the document needs."""

    def __init__(self) -> None:
        self.refs: dict[tuple[type[BaseModel], JsonSchemaMode], dict[str, Any]] = {}

    def schema(self, model: type[BaseModel], mode: JsonSchemaMode) -> dict[str, Any]:
        """A reference to ``model``'s schema, filled in by `resolve` once every model is known
        (pydantic names a model used both ways ``-Input`` and ``-Output`` only if they differ)."""
        return self.refs.setdefault((model, mode), {})

    def resolve(self, extra: list[type[BaseModel]]) -> dict[str, Any]:
        """Every schema, by name; fills each reference handed out by `schema`."""
        for model in extra:
            self.schema(model, "serialization")
        found, definitions = models_json_schema(
            list(self.refs), ref_template="#/components/schemas/{model}"
        )
        for key, ref in self.refs.items():
            ref.update(found[key])
        schemas: dict[str, Any] = definitions["$defs"]
        return schemas

    def operation(self, route: registry.RouteSpec, doc: Operation) -> dict[str, Any]:
        """The OpenAPI operation of ``route``: its parameters, body, replies and errors."""
        guarded = route.scope is not None and not route.websocket
        found: dict[str, Any] = {"operationId": doc.operation_id, "summary": doc.summary}
        if doc.description:
            found["description"] = doc.description
        if route.scope is not None:
            found["x-required-scope"] = route.scope
        if not guarded:
            found["security"] = []
        parameters: list[dict[str, Any]] = []
        if not route.websocket:
            parameters.append({"$ref": "#/components/parameters/RequestId"})
        for name in re.findall(r"\{(\w+)\}", route.path):
            if name not in PATH_PARAMETERS:
                raise DocumentError(f"{route.path}: no path parameter {name!r} in PATH_PARAMETERS")
            parameters.append({"$ref": f"#/components/parameters/{PATH_PARAMETERS[name][0]}"})
        parameters.extend(doc.parameters)
        if parameters:
            found["parameters"] = parameters
        kinds: list[type[errors.AppError]] = [errors.AppError]
        if guarded:
            kinds.extend(GUARD_ERRORS)
        if route.websocket:
            kinds.append(errors.UpgradeRequired)
        if doc.request is not None:
            model = type(doc.request)
            found["requestBody"] = {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": self.schema(model, "validation"),
                        "examples": {"request": {"value": _dump(doc.request)}},
                    }
                },
            }
            kinds.extend(BODY_ERRORS)
        if any(PARAMETERS.get(_component(p), p)["in"] == "query" for p in parameters):
            kinds.append(errors.ValidationFailed)
        kinds.extend(doc.raises)
        found["responses"] = {
            **{str(reply.status): self.reply(reply, guarded) for reply in doc.replies},
            **self.failures(route, kinds, doc.error_examples),
        }
        if len(found["responses"]) != len(doc.replies) + len({k.status for k in kinds}):
            raise DocumentError(f"{route.method} {route.path}: a reply's status is also an error's")
        return found

    def reply(self, reply: Reply, guarded: bool) -> dict[str, Any]:
        """A non-error response; a guarded route's carry the rate limit headers."""
        found: dict[str, Any] = {"description": reply.description}
        names = reply.headers
        if reply.status != 101:
            names = ("RequestId", *(RATE_LIMIT_HEADERS if guarded else ()), *names)
        if names:
            found["headers"] = _header_refs(names)
        if reply.examples:
            models = {type(example) for example in reply.examples.values()}
            model = models.pop() if len(models) == 1 else None
            if reply.schema is not None:
                schema = reply.schema
            elif model is not None and issubclass(model, BaseModel):
                schema = self.schema(model, "serialization")
            else:
                raise DocumentError(f"{reply.description!r}: examples of one model, or a schema")
            examples = {name: {"value": _dump(value)} for name, value in reply.examples.items()}
            found["content"] = {reply.media_type: {"schema": schema, "examples": examples}}
        return found

    def failures(
        self,
        route: registry.RouteSpec,
        kinds: list[type[errors.AppError]],
        samples: tuple[errors.AppError, ...],
    ) -> dict[str, Any]:
        """One response per error status: each code it may carry, with an example envelope."""
        examples = {**ERROR_EXAMPLES, **{exc.code: exc for exc in samples}}
        unused = {exc.code for exc in samples} - {kind.code for kind in kinds}
        if unused:
            raise DocumentError(f"{route.path}: error examples of codes it never answers {unused}")
        by_status: dict[int, list[type[errors.AppError]]] = {}
        for kind in sorted(dict.fromkeys(kinds), key=lambda kind: kind.code):
            by_status.setdefault(kind.status, []).append(kind)
        responses: dict[str, Any] = {}
        for status, group in sorted(by_status.items()):
            headers = ("RequestId", "RetryAfter") if status in RETRY_STATUSES else ("RequestId",)
            responses[str(status)] = {
                "description": "\n".join(f"- `{kind.code}`: {_text(kind)}" for kind in group),
                "headers": _header_refs(headers),
                "content": {
                    "application/json": {
                        "schema": self.schema(ErrorEnvelope, "serialization"),
                        "examples": {
                            kind.code: {
                                "value": _envelope(examples.get(kind.code) or kind(_text(kind)))
                            }
                            for kind in group
                        },
                    }
                },
            }
        return responses


def _component(parameter: dict[str, Any]) -> str:
    return str(parameter.get("$ref", "")).rsplit("/", 1)[-1]


def error_codes() -> dict[str, dict[str, Any]]:
    """Every machine-readable error code, with its HTTP status and meaning."""
    return {
        kind.code: {"status": kind.status, "description": _text(kind)}
        for kind in errors.catalogue()
    }


def _error_body(schema: dict[str, Any], codes: dict[str, dict[str, Any]]) -> None:
    """Name every code in ErrorBody's `code` (a table), without closing the set: clients must
    treat a code they do not know by its HTTP status."""
    rows = "\n".join(
        f"| `{code}` | {row['status']} | {row['description']} |" for code, row in codes.items()
    )
    schema["properties"]["code"]["description"] = (
        "Machine-readable; branch on it, not on `message`. A client meeting a code not listed "
        "here (a newer server) goes by the HTTP status. Also in `components.x-error-codes`.\n\n"
        f"| code | status | meaning |\n|---|---|---|\n{rows}"
    )


def document() -> dict[str, Any]:
    """The whole OpenAPI document; `DocumentError` when a route of the registry has no entry in
    `OPERATIONS` (or an entry has no route)."""
    problems = undocumented()
    if problems:
        raise DocumentError("; ".join(problems))
    routes = public_routes()
    top = next(spec for spec in registry.FUNCTIONS if spec.access == "public")
    builder = _Builder()
    paths: dict[str, dict[str, Any]] = {}
    servers: dict[str, dict[str, tuple[registry.FunctionSpec, ...]]] = {}
    ids: dict[str, str] = {}
    for (method, path), (route, specs) in routes.items():
        doc = OPERATIONS[route.operation]
        if doc.operation_id in ids:
            raise DocumentError(f"operationId {doc.operation_id!r} of {ids[doc.operation_id]} too")
        ids[doc.operation_id] = f"{method} {path}"
        paths.setdefault(path, {})[method.lower()] = builder.operation(route, doc)
        servers.setdefault(path, {})[method.lower()] = specs
    for path, by_method in servers.items():
        if len(set(by_method.values())) == 1:  # one set of functions: a path-level entry
            specs = next(iter(by_method.values()))
            if specs != (top,):
                paths[path]["servers"] = [_server(spec) for spec in specs]
            continue
        for method, specs in by_method.items():
            if specs != (top,):
                paths[path][method]["servers"] = [_server(spec) for spec in specs]
    # The stream's events, and a WebSocket session's own (its protocol: docs/asyncapi.json), so
    # that clients generated from this document have their types too.
    schemas = builder.resolve([*STREAM_EVENTS.values(), *SESSION_EVENTS.values()])
    codes = error_codes()
    _error_body(schemas["ErrorBody"], codes)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "NGX Agent Functions API",
            "version": VERSION,
            "description": (
                "Chat with an LLM agent: JSON answers, Server-Sent Event streams, and the "
                'caller\'s conversations. Every error is `{"error": {"code", "message", '
                '"details", "request_id"}}`; its codes are listed in `ErrorBody.code`. JSON '
                "answers of 1 kB or more are gzip-compressed when the request's "
                "`Accept-Encoding` allows it; event streams never are."
            ),
        },
        "servers": [_server(top)],
        "security": [{"bearerAuth": []}, {"apiKeyAuth": []}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "A Firebase Auth / Identity Platform ID token",
                },
                "apiKeyAuth": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            },
            "parameters": PARAMETERS,
            "headers": HEADERS,
            "x-error-codes": codes,
        },
    }


def render() -> str:
    """The document as committed: sorted keys, two-space indent, trailing newline."""
    return json.dumps(document(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    print(render(), end="")
