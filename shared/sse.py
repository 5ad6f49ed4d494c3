"""Server-Sent Events framing (the WHATWG ``text/event-stream`` format)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from pydantic import BaseModel

from shared import errors
from shared.contracts import ErrorBody, ErrorEnvelope

HEARTBEAT = b": keep-alive\n\n"
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
MEDIA_TYPE = "text/event-stream"

log = logging.getLogger("ngx.sse")


def frame(event: str, data: BaseModel, event_id: int) -> bytes:
    """One event with its id; the JSON data is one line, so it needs no ``data:`` splitting."""
    return f"id: {event_id}\nevent: {event}\ndata: {data.model_dump_json()}\n\n".encode()


def error_event(exc: errors.AppError, request_id: str) -> ErrorEnvelope:
    """The error envelope carried by an ``error`` event."""
    return ErrorEnvelope(
        error=ErrorBody(
            code=exc.code, message=exc.message, details=exc.details, request_id=request_id
        )
    )


async def encode(
    first: tuple[str, BaseModel],
    rest: AsyncIterator[tuple[str, BaseModel]],
    request_id: str,
) -> AsyncIterator[bytes]:
    """Frame a stream of events; a failure part-way ends the stream with an ``error`` event."""
    event_id = 1
    yield frame(*first, event_id)
    try:
        async for name, data in rest:
            event_id += 1
            yield frame(name, data, event_id)
    except errors.AppError as exc:
        yield frame("error", error_event(exc, request_id), event_id + 1)
    except Exception:
        log.exception("stream failed")
        yield frame(
            "error", error_event(errors.AppError("internal error"), request_id), event_id + 1
        )
