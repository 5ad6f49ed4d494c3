"""The WebSocket session protocol (``/v1/sessions``, subprotocol ``ngx.v1``): what a client may
send, what the server sends back, and the close codes. `docs/asyncapi.json` is built from it.

Every frame is a JSON text frame. A client's message names its ``type`` and may carry a ``ref``
the server repeats on what answers it. Server events mirror the Server-Sent Events of
``POST /v1/chat:stream`` — same names, ids (``{stream_id}:{seq}``) and data — plus the session's
own: ``ready``, ``pong``, ``cancelled`` and ``reconnect``, and notices to the user wherever they
come from: ``job`` (one of the user's jobs ended), ``operator_message`` (a person replied in a
handed-off conversation) and ``handoff_closed``.
"""

from __future__ import annotations

import json
from enum import IntEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel, field_validator

from shared.contracts import (
    ID_PATTERN,
    ChatRequest,
    HandoffClosed,
    JobView,
    OperatorMessage,
    _not_reserved,
)

PROTOCOL = "ngx.v1"
BEARER_PREFIX = "ngx.bearer."  # Sec-WebSocket-Protocol: ngx.v1, ngx.bearer.<ID token>
KEY_PREFIX = "ngx.key."  # Sec-WebSocket-Protocol: ngx.v1, ngx.key.<API key>
MAX_CREDENTIAL_CHARS = 8192
FRAME_LIMIT_BYTES = 1024 * 1024  # the server's WebSocket message limit: bigger ones close 1009


class Close(IntEnum):
    """Close codes this server sends (1000–1011 are RFC 6455's, 4000–4999 the protocol's)."""

    NORMAL = 1000
    GOING_AWAY = 1001  # the instance is shutting down: reconnect (and resume)
    TOO_BIG = 1009  # a frame over FRAME_LIMIT_BYTES (closed by the server's WebSocket layer)
    INTERNAL = 1011
    SERVICE_RESTART = 1012  # sent by the server's WebSocket layer when the instance stops
    TRY_AGAIN = 1013  # credentials could not be checked right now (a dependency is down)
    RECONNECT = 4000  # the session reached its time limit: reconnect and resume
    SLOW_CONSUMER = 4001  # the client read too slowly: session_send_queue events were waiting
    IDLE = 4002  # nothing sent and nothing running for session_idle_s
    UNAUTHENTICATED = 4401  # no valid credential in time, or a message before it
    FORBIDDEN = 4403  # the credential lacks the chat scope, or another subject re-authenticated


CLOSE_REASONS = {
    Close.NORMAL: "closed",
    Close.GOING_AWAY: "the server is shutting down: reconnect and resume",
    Close.TOO_BIG: "frame too big",
    Close.INTERNAL: "internal error",
    Close.SERVICE_RESTART: "the instance is restarting: reconnect and resume",
    Close.TRY_AGAIN: "credentials cannot be checked right now: reconnect shortly",
    Close.RECONNECT: "session time limit: reconnect and resume with the last event ids",
    Close.SLOW_CONSUMER: "the client did not read its events in time",
    Close.IDLE: "idle session",
    Close.UNAUTHENTICATED: "authentication required",
    Close.FORBIDDEN: "not allowed",
}


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ref: str | None = Field(
        None, pattern=ID_PATTERN, description="Repeated on the events that answer this message."
    )
    _ref = field_validator("ref")(_not_reserved)


class AuthMessage(_Message):
    """Authenticates the session (unless the subprotocol header did), or renews its credential
    (the same subject only)."""

    type: Literal["auth"]
    token: str | None = Field(None, min_length=1, max_length=MAX_CREDENTIAL_CHARS)
    api_key: str | None = Field(None, min_length=1, max_length=256)


class ChatMessage(_Message):
    """Asks a question: ``request`` is the body of ``POST /v1/chat``."""

    type: Literal["chat"]
    request: ChatRequest


class CancelMessage(_Message):
    """Stops an answer (its model call with it); without ``stream_id``, every running one."""

    type: Literal["cancel"]
    stream_id: str | None = Field(None, pattern=ID_PATTERN)
    _stream = field_validator("stream_id")(_not_reserved)


class ResumeMessage(_Message):
    """Receives the events of a stream after ``last_event_id`` (from this session, an earlier
    one, or an SSE stream), without a second model call."""

    type: Literal["resume"]
    last_event_id: str = Field(min_length=1, max_length=80)


class PingMessage(_Message):
    """Answered with ``pong``; keeps an idle session open."""

    type: Literal["ping"]


ClientMessage = Annotated[
    AuthMessage | ChatMessage | CancelMessage | ResumeMessage | PingMessage,
    Field(discriminator="type"),
]


class ClientFrame(RootModel[ClientMessage]):
    """One message from the client."""


class Ready(BaseModel):
    """The session is open and authenticated: its limits."""

    session_id: str
    protocol: str = PROTOCOL
    expires_in_s: float = Field(description="when the server asks the client to reconnect")
    idle_timeout_s: float
    max_frame_bytes: int = Field(description="a larger chat message is refused with 413")
    max_streams: int = Field(description="answers that may run at once")


class Pong(BaseModel):
    """The answer to ``ping``."""


class Cancelled(BaseModel):
    """An answer was stopped at the client's request."""

    stream_id: str | None = None


class Reconnect(BaseModel):
    """The session ends soon (close 4000): open a new one and resume these streams there."""

    reason: str
    drain_s: float = Field(description="running answers may finish this long before the close")
    last_event_ids: list[str] = Field(description="where to resume each running answer")


SESSION_EVENTS: dict[str, type[BaseModel]] = {
    "ready": Ready,
    "pong": Pong,
    "cancelled": Cancelled,
    "reconnect": Reconnect,
    "job": JobView,  # a job of the user's ended (an export: GET /v1/jobs/{id} for its link)
    "operator_message": OperatorMessage,  # a person replied in a handed-off conversation
    "handoff_closed": HandoffClosed,  # the agent answers that conversation again
}


def event(
    name: str,
    data: BaseModel | str,
    ref: str | None = None,
    stream_id: str | None = None,
    event_id: str | None = None,
) -> str:
    """A server event as sent: ``data`` a model, or JSON text already serialized."""
    parts = [f'{{"type":{json.dumps(name)}']
    if event_id is not None:
        parts.append(f',"id":{json.dumps(event_id)}')
    if stream_id is not None:
        parts.append(f',"stream_id":{json.dumps(stream_id)}')
    if ref is not None:
        parts.append(f',"ref":{json.dumps(ref)}')
    body = data if isinstance(data, str) else data.model_dump_json()
    parts.append(f',"data":{body}}}')
    return "".join(parts)


def from_sse(frame: bytes, ref: str | None) -> tuple[str, str, str]:
    """A stream's Server-Sent Event as a session event: (event text, event name, event id).

    The stream machinery frames every event as ``[retry:] id: event: data:`` with one line of
    JSON data (`shared.sse.frame`), so the data is carried over as it is."""
    fields: dict[str, str] = {}
    for line in frame.decode().split("\n"):
        key, sep, value = line.partition(": ")
        if sep:
            fields[key] = value
    name, event_id = fields["event"], fields["id"]
    stream_id = event_id.rpartition(":")[0]
    return event(name, fields["data"], ref, stream_id, event_id), name, event_id


def offered_credential(subprotocols: list[str]) -> tuple[str, str] | None:
    """The credential a client put in ``Sec-WebSocket-Protocol``: ("bearer"|"key", value)."""
    for offered in subprotocols:
        for kind, prefix in (("bearer", BEARER_PREFIX), ("key", KEY_PREFIX)):
            if offered.startswith(prefix) and len(offered) <= MAX_CREDENTIAL_CHARS:
                return kind, offered[len(prefix) :]
    return None
