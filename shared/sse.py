"""Server-Sent Events framing (the WHATWG ``text/event-stream`` format)."""

from __future__ import annotations

from pydantic import BaseModel

from shared import errors
from shared.contracts import ErrorBody, ErrorEnvelope

HEARTBEAT = b": keep-alive\n\n"
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
MEDIA_TYPE = "text/event-stream"


def frame(event: str, data: BaseModel, event_id: str) -> bytes:
    """One event with its id; the JSON data is one line, so it needs no ``data:`` splitting."""
    return f"id: {event_id}\nevent: {event}\ndata: {data.model_dump_json()}\n\n".encode()


def error_event(exc: errors.AppError, request_id: str) -> ErrorEnvelope:
    """The error envelope carried by an ``error`` event."""
    return ErrorEnvelope(
        error=ErrorBody(
            code=exc.code, message=exc.message, details=exc.details, request_id=request_id
        )
    )
