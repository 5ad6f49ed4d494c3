"""Server-Sent Events framing (the WHATWG ``text/event-stream`` format)."""

from __future__ import annotations

from pydantic import BaseModel

from shared import errors
from shared.contracts import ErrorBody, ErrorEnvelope

HEARTBEAT = b": keep-alive\n\n"
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
MEDIA_TYPE = "text/event-stream"


def frame(event: str, data: BaseModel, event_id: str, retry_s: int | None = None) -> bytes:
    """One event with its id; the JSON data is one line, so it needs no ``data:`` splitting.
    ``retry_s``: the stream's ``retry:`` field, the WHATWG way to tell a client when to try again
    (an error event whose failure has a Retry-After carries it)."""
    retry = f"retry: {retry_s * 1000}\n" if retry_s is not None else ""
    return f"{retry}id: {event_id}\nevent: {event}\ndata: {data.model_dump_json()}\n\n".encode()


def error_event(exc: errors.AppError, request_id: str) -> ErrorEnvelope:
    """The error envelope carried by an ``error`` event."""
    return ErrorEnvelope(
        error=ErrorBody(
            code=exc.code, message=exc.message, details=exc.details, request_id=request_id
        )
    )
