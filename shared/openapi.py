"""The OpenAPI 3.1 document of the public API, generated from the pydantic contracts.

``python -m shared.openapi > docs/openapi.json`` (or ``make openapi``) regenerates the committed
copy; a test fails when they drift apart. Mobile teams generate their clients from it.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from shared import registry
from shared.contracts import (
    ID_PATTERN,
    STREAM_EVENTS,
    ChatRequest,
    ChatResponse,
    ConfirmationDecision,
    ConversationDetail,
    ConversationPage,
    Deleted,
    Erased,
    ErrorEnvelope,
    Feedback,
    FeedbackRequest,
    HandoffClosed,
    HandoffList,
    JobView,
    OperatorMessage,
    OperatorReply,
)
from shared.idempotency import MAX_KEY_CHARS

VERSION = "1.0.0"


def _server(spec: registry.FunctionSpec) -> dict[str, str]:
    """Where a function answers in the local stack (its registry port)."""
    url = f"http://127.0.0.1:{spec.local_port}"
    return {"url": url, "description": f"{spec.name} function (local stack)"}


CHAT_SERVER = _server(registry.CHAT)
STREAM_SERVER = _server(registry.STREAM)
ERRORS = {
    "400": "Malformed JSON, or a request the model rejected",
    "401": "Missing or invalid credentials",
    "403": "The credential lacks the scope this route needs, or a named tool is not the caller's",
    "404": "Not found (someone else's conversation is reported the same way)",
    "409": "A request with this Idempotency-Key is still running, or the confirmation was decided",
    "410": "The confirmation expired undecided",
    "413": "Body or message over the size limit",
    "415": "Content-Type is not application/json",
    "422": "Invalid fields, query parameters or Idempotency-Key reuse; details name each field",
    "426": "A WebSocket endpoint reached without the WebSocket handshake",
    "429": "Rate limit or daily token budget reached; see Retry-After",
    "502": "The model failed, or its answer broke the response schema (invalid_model_output)",
    "503": "No model or dependency can serve right now; see Retry-After",
    "504": "The model did not answer in time",
}


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _json(model: type[BaseModel]) -> dict[str, Any]:
    return {"application/json": {"schema": _ref(model)}}


def _errors(*codes: str) -> dict[str, Any]:
    return {
        code: {
            "description": ERRORS[code],
            "headers": {"X-Request-Id": {"$ref": "#/components/headers/RequestId"}},
            "content": _json(ErrorEnvelope),
        }
        for code in codes
    }


def _ok(description: str, content: dict[str, Any]) -> dict[str, Any]:
    return {
        "200": {
            "description": description,
            "headers": {
                "X-Request-Id": {"$ref": "#/components/headers/RequestId"},
                "RateLimit-Limit": {"$ref": "#/components/headers/RateLimitLimit"},
                "RateLimit-Remaining": {"$ref": "#/components/headers/RateLimitRemaining"},
                "RateLimit-Reset": {"$ref": "#/components/headers/RateLimitReset"},
            },
            "content": content,
        }
    }


PAGE_PARAMETERS = [
    {
        "name": "page_size",
        "in": "query",
        "required": False,
        "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20},
    },
    {
        "name": "page_token",
        "in": "query",
        "required": False,
        "schema": {"type": "string", "pattern": r"^[A-Za-z0-9_-]{1,80}$"},
    },
]
CONFIRMATION_ID = {
    "name": "confirmation_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": r"^cf_[A-Za-z0-9]{16}$"},
}
CONVERSATION_ID = {
    "name": "conversation_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": ID_PATTERN},
}
MESSAGE_ID = {**CONVERSATION_ID, "name": "message_id"}
REQUEST_ID = {"$ref": "#/components/parameters/RequestId"}
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
COMMON = ("401", "403", "404", "422", "429", "503")


def document() -> dict[str, Any]:
    """The whole OpenAPI document."""
    models: list[type[BaseModel]] = [
        ChatRequest,
        ChatResponse,
        ConfirmationDecision,
        ConversationPage,
        ConversationDetail,
        Deleted,
        Erased,
        JobView,
        HandoffList,
        HandoffClosed,
        OperatorMessage,
        OperatorReply,
        *STREAM_EVENTS.values(),
    ]
    _, definitions = models_json_schema(
        [
            (model, "serialization" if model is not ChatRequest else "validation")
            for model in models
        ],
        ref_template="#/components/schemas/{model}",
    )
    chat_body = {"required": True, "content": _json(ChatRequest)}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "NGX Agent Functions API",
            "version": VERSION,
            "description": (
                "Chat with an LLM agent: JSON answers, Server-Sent Event streams, and the "
                'caller\'s conversations. Every error is `{"error": {"code", "message", '
                '"details", "request_id"}}`.'
            ),
        },
        "servers": [CHAT_SERVER],
        "security": [{"bearerAuth": []}, {"apiKeyAuth": []}],
        "paths": {
            "/v1/chat": {
                "post": {
                    "operationId": "chat",
                    "summary": "Answer a message (JSON)",
                    "parameters": [
                        REQUEST_ID,
                        {
                            "name": "Idempotency-Key",
                            "in": "header",
                            "required": False,
                            "description": (
                                "Replays return the first answer byte for byte, without a "
                                "second model call (kept for idempotency_ttl_h, 24 h by "
                                "default; the answer is stored in the same commit as its "
                                "exchange). A replay while the first request runs waits for "
                                "it, then answers 409 with Retry-After; the same key with "
                                "another body is 422. If the first request's instance died, "
                                "a replay after idempotency_lease_s (600 s) runs it again."
                            ),
                            "schema": {
                                "type": "string",
                                "minLength": 1,
                                "maxLength": MAX_KEY_CHARS,
                            },
                        },
                    ],
                    "requestBody": chat_body,
                    "responses": {
                        **_ok("The answer", _json(ChatResponse)),
                        **_errors("400", "409", "413", "415", "502", "504", *COMMON),
                    },
                }
            },
            "/v1/chat:stream": {
                "servers": [STREAM_SERVER],
                "post": {
                    "operationId": "chatStream",
                    "summary": "Answer a message as Server-Sent Events",
                    "description": (
                        "Events: `meta` (MetaEvent), then `delta` (DeltaEvent) and, when the "
                        "agent calls tools, `tool_call` (ToolCallEvent) and `tool_result` "
                        "(ToolResultEvent) in the order they happen; `confirmation_required` "
                        "(ConfirmationRequired) when it proposes an action; `handoff` "
                        "(HandoffState) when a person, not the model, takes the message; "
                        "`data` (DataEvent) "
                        "with `response_schema`; then `usage` (Usage) and `done` (DoneEvent) — "
                        "or `error` (ErrorEnvelope). Every event has an `id`; after a dropped "
                        "connection, send the request again with `Last-Event-ID` to receive the "
                        "rest (the body is then ignored)."
                    ),
                    "parameters": [
                        REQUEST_ID,
                        {
                            "name": "Last-Event-ID",
                            "in": "header",
                            "required": False,
                            "description": "Resume after this event; empty means a new stream.",
                            "schema": {
                                "type": "string",
                                "pattern": r"^([A-Za-z0-9_-]{1,64}:\d{1,9})?$",
                            },
                        },
                        {
                            "name": "Idempotency-Key",
                            "in": "header",
                            "required": False,
                            "description": (
                                "As on chat, with events: one model call and one stored "
                                "exchange per key. A replay while the first stream runs "
                                "receives that stream from its first event; a replay after "
                                "it finished receives its events as sent (ids included). The "
                                "same key with another body (or on chat) is 422; a replay of "
                                "a first request that failed before its first event is 409."
                            ),
                            "schema": {
                                "type": "string",
                                "minLength": 1,
                                "maxLength": MAX_KEY_CHARS,
                            },
                        },
                    ],
                    "requestBody": chat_body,
                    "responses": {
                        **_ok(
                            "The event stream",
                            {"text/event-stream": {"schema": SSE_EVENT}},
                        ),
                        **_errors("400", "409", "413", "415", "502", *COMMON),
                    },
                },
            },
            "/v1/sessions": {
                "servers": [STREAM_SERVER],
                "get": {
                    "operationId": "openSession",
                    "summary": "Open a WebSocket session (protocol: docs/asyncapi.json)",
                    "description": (
                        "A WebSocket handshake with subprotocol `ngx.v1`. Authenticate with a "
                        "second offered subprotocol `ngx.bearer.<ID token>` or `ngx.key.<API "
                        'key>` (never echoed back), or with a first message `{"type": '
                        '"auth"}` within session_auth_timeout_s; never in the query string. '
                        "Then send `chat` (the body of POST /v1/chat), `cancel`, `resume` "
                        "(Last-Event-ID of any stream) and `ping`; events mirror the stream's "
                        "Server-Sent Events. Close codes: 4000 reconnect (time limit), 4001 "
                        "slow consumer, 4002 idle, 4401 unauthenticated, 4403 forbidden, 1009 "
                        "frame over 1 MiB."
                    ),
                    "security": [],
                    "parameters": [
                        {
                            "name": "Sec-WebSocket-Protocol",
                            "in": "header",
                            "required": False,
                            "description": "`ngx.v1`, optionally with the credential.",
                            "schema": {"type": "string"},
                        }
                    ],
                    "responses": {
                        "101": {"description": "Switching Protocols: the session runs"},
                        "403": {"description": "A browser page of an origin not allowed"},
                        **_errors("426"),
                    },
                },
            },
            "/v1/confirmations/{confirmation_id}": {
                "post": {
                    "operationId": "decideConfirmation",
                    "summary": "Approve or deny an action the agent proposed",
                    "description": (
                        "A tool declared `confirm = true` is not run when the model calls it: "
                        "the answer carries `confirmation` (and finish_reason "
                        "`confirmation_required`). Approving runs the call once (never twice) "
                        "and the agent goes on; denying tells the model the user declined. "
                        "The first decision counts: sending it again returns the same answer, "
                        "the other decision is 422 (409 once the replay record is gone). Owner "
                        "only; expires after confirmation_ttl_s (410)."
                    ),
                    "parameters": [REQUEST_ID, CONFIRMATION_ID],
                    "requestBody": {"required": True, "content": _json(ConfirmationDecision)},
                    "responses": {
                        **_ok("The agent's answer after the decision", _json(ChatResponse)),
                        **_errors("400", "409", "410", "413", "415", "502", "504", *COMMON),
                    },
                }
            },
            "/v1/conversations": {
                "get": {
                    "operationId": "listConversations",
                    "summary": "The caller's conversations, most recently updated first",
                    "parameters": [REQUEST_ID, *PAGE_PARAMETERS],
                    "responses": {**_ok("A page", _json(ConversationPage)), **_errors(*COMMON)},
                }
            },
            "/v1/conversations/{conversation_id}": {
                "get": {
                    "operationId": "getConversation",
                    "summary": "A conversation and its messages, newest first",
                    "parameters": [REQUEST_ID, CONVERSATION_ID, *PAGE_PARAMETERS],
                    "responses": {
                        **_ok("A page of messages", _json(ConversationDetail)),
                        **_errors(*COMMON),
                    },
                },
                "delete": {
                    "operationId": "deleteConversation",
                    "summary": "Delete a conversation and every message in it",
                    "parameters": [REQUEST_ID, CONVERSATION_ID],
                    "responses": {**_ok("Deleted", _json(Deleted)), **_errors(*COMMON)},
                },
            },
            "/v1/conversations/{conversation_id}/messages/{message_id}/feedback": {
                "post": {
                    "operationId": "rateAnswer",
                    "summary": "Rate one of the caller's answers: thumbs or 1–5 stars",
                    "description": (
                        "Exactly one of `thumbs` or `stars`, up to five distinct `reasons` from "
                        "a fixed list, an optional comment (1,000 characters, no control "
                        "characters). The last rating given wins. Owner only: another user's "
                        "conversation or message is 404; a user's own message is 422. Erased "
                        "with the user and deleted with the conversation."
                    ),
                    "parameters": [REQUEST_ID, CONVERSATION_ID, MESSAGE_ID],
                    "requestBody": {"required": True, "content": _json(FeedbackRequest)},
                    "responses": {
                        **_ok("The rating as kept", _json(Feedback)),
                        **_errors("400", "413", "415", *COMMON),
                    },
                }
            },
            "/v1/me": {
                "delete": {
                    "operationId": "eraseMe",
                    "summary": "Erase everything stored about the caller (right to be forgotten)",
                    "description": (
                        "Deletes the caller's conversations and messages, idempotency records, "
                        "API keys, cache entries its requests filled, stream buffers, and token "
                        "budget and rate limit counters, and records the erasure in a ledger "
                        "that restores honour. Backups taken before it age out after "
                        "backup_keep_days. Running it again is harmless. Needs the `account` "
                        "scope: every user's ID token has it; an API key only when created "
                        "with it (`agentctl keys create --scope account`)."
                    ),
                    "parameters": [REQUEST_ID],
                    "responses": {**_ok("Erased", _json(Erased)), **_errors(*COMMON)},
                },
            },
            "/v1/me/export": {
                "post": {
                    "operationId": "exportMe",
                    "summary": "Export everything stored about the caller (a job)",
                    "description": (
                        "Queues an export job (202, `Location: /v1/jobs/{job_id}`): the worker "
                        "writes a JSON archive of exactly what `DELETE /v1/me` would delete "
                        "(API key hashes and retrieval vectors left out). While one is queued "
                        "or running, the same job is returned (200). Poll the job, or watch a "
                        "WebSocket session for its `job` event; once succeeded it carries a "
                        "short-lived `download_url`. Needs the `account` scope."
                    ),
                    "parameters": [REQUEST_ID],
                    "responses": {
                        "202": {
                            "description": "The export job, queued",
                            "headers": {
                                "X-Request-Id": {"$ref": "#/components/headers/RequestId"},
                                "Location": {"schema": {"type": "string"}},
                            },
                            "content": _json(JobView),
                        },
                        **_ok("The export job already queued or running", _json(JobView)),
                        **_errors(*COMMON),
                    },
                },
            },
            "/v1/handoffs": {
                "get": {
                    "operationId": "listHandoffs",
                    "summary": "Hand-offs to a person (support staff: the `handoffs` scope)",
                    "description": (
                        "Open hand-offs (pending and active), or those of one `status`, "
                        "oldest request first. A hand-off starts when a user asks for a "
                        "person, when the agent calls its `handoff` tool, or after "
                        "handoff_after_unsure unsure answers in a row; meanwhile the model "
                        "does not answer that conversation."
                    ),
                    "parameters": [
                        REQUEST_ID,
                        {
                            "name": "status",
                            "in": "query",
                            "required": False,
                            "schema": {"enum": ["pending", "active", "closed"]},
                        },
                    ],
                    "responses": {**_ok("Hand-offs", _json(HandoffList)), **_errors(*COMMON)},
                },
            },
            "/v1/handoffs/{conversation_id}/messages": {
                "post": {
                    "operationId": "replyHandoff",
                    "summary": "Reply to the user as a person",
                    "description": (
                        "Stored in the conversation as an `operator` message and shown at "
                        "once on the user's open WebSocket sessions (`operator_message`). "
                        "The hand-off becomes `active`. 404 when the conversation has no open "
                        "hand-off."
                    ),
                    "parameters": [REQUEST_ID, CONVERSATION_ID],
                    "requestBody": {"required": True, "content": _json(OperatorReply)},
                    "responses": {
                        "201": {
                            "description": "The reply, stored",
                            "headers": {"X-Request-Id": {"$ref": "#/components/headers/RequestId"}},
                            "content": _json(OperatorMessage),
                        },
                        **_errors("400", "413", "415", *COMMON),
                    },
                },
            },
            "/v1/handoffs/{conversation_id}/close": {
                "post": {
                    "operationId": "closeHandoff",
                    "summary": "Give the conversation back to the agent",
                    "parameters": [REQUEST_ID, CONVERSATION_ID],
                    "responses": {
                        **_ok("The hand-off, closed", _json(HandoffClosed)),
                        **_errors(*COMMON),
                    },
                },
            },
            "/v1/jobs/{job_id}": {
                "get": {
                    "operationId": "getJob",
                    "summary": "One of the caller's jobs",
                    "description": (
                        "Status (queued, running, succeeded, failed), attempts, the last error, "
                        "the result; a succeeded export carries `download_url`, valid until "
                        "`download_expires_at` (read the job again for a new one). Another "
                        "user's job is 404."
                    ),
                    "parameters": [
                        REQUEST_ID,
                        {
                            "name": "job_id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string", "pattern": r"^job_[a-z0-9]{20}$"},
                        },
                    ],
                    "responses": {**_ok("The job", _json(JobView)), **_errors(*COMMON)},
                },
            },
            "/healthz": {
                "get": {
                    "operationId": "healthz",
                    "summary": "Liveness",
                    "security": [],
                    "responses": {
                        "200": {
                            "description": "Serving",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        }
                    },
                }
            },
        },
        "components": {
            "schemas": definitions["$defs"],
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "A Firebase Auth / Identity Platform ID token",
                },
                "apiKeyAuth": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            },
            "parameters": {
                "RequestId": {
                    "name": "X-Request-Id",
                    "in": "header",
                    "required": False,
                    "description": (
                        "Echoed back when it is 1-128 characters of [A-Za-z0-9._:-]; any other "
                        "value is replaced by a generated id."
                    ),
                    "schema": {"type": "string"},
                }
            },
            "headers": {
                "RequestId": {"schema": {"type": "string"}},
                "RateLimitLimit": {"schema": {"type": "integer"}},
                "RateLimitRemaining": {"schema": {"type": "integer"}},
                "RateLimitReset": {"schema": {"type": "integer"}},
            },
        },
    }


def undocumented(doc: dict[str, Any]) -> list[str]:
    """Routes of the public functions (probes aside) that the document does not describe."""
    paths = doc["paths"]
    return [
        f"{route.method} {route.path} ({spec.name})"
        for spec in registry.FUNCTIONS
        if spec.access == "public"
        for route in spec.routes
        if route.operation not in ("healthz", "readyz")
        and route.method.lower() not in paths.get(route.path, {})
    ]


def render() -> str:
    """The document as committed: sorted keys, two-space indent, trailing newline."""
    return json.dumps(document(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    print(render(), end="")
