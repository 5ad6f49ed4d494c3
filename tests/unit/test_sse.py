"""SSE framing: every event has an id; a failure part-way becomes an `error` event."""

from __future__ import annotations

from collections.abc import AsyncIterator

from pydantic import BaseModel

from shared import errors, sse
from shared.contracts import DeltaEvent, DoneEvent


def test_frame_has_id_event_and_single_line_data() -> None:
    assert sse.frame("delta", DeltaEvent(text="a\nb"), 7) == (
        b'id: 7\nevent: delta\ndata: {"text":"a\\nb"}\n\n'
    )


async def test_failure_midway_ends_with_error_event() -> None:
    async def events() -> AsyncIterator[tuple[str, BaseModel]]:
        yield "delta", DeltaEvent(text="x")
        raise errors.ModelUnavailable("down", retry_after=3)

    out = [chunk async for chunk in sse.encode(("done", DoneEvent()), events(), "rid")]
    assert out[0].startswith(b"id: 1\nevent: done")
    assert out[1].startswith(b"id: 2\nevent: delta")
    assert out[2].startswith(b"id: 3\nevent: error")
    assert b'"code":"model_unavailable"' in out[2]
    assert b'"request_id":"rid"' in out[2]
