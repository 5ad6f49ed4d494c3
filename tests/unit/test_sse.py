"""SSE framing: every event carries its id and a single-line JSON payload."""

from __future__ import annotations

from shared import errors, sse
from shared.contracts import DeltaEvent


def test_frame_has_id_event_and_single_line_data() -> None:
    assert sse.frame("delta", DeltaEvent(text="a\nb"), "s1:7") == (
        b'id: s1:7\nevent: delta\ndata: {"text":"a\\nb"}\n\n'
    )


def test_error_event_is_the_envelope() -> None:
    envelope = sse.error_event(errors.ModelUnavailable("down", retry_after=3), "rid")
    assert envelope.model_dump() == {
        "error": {
            "code": "model_unavailable",
            "message": "down",
            "details": [],
            "request_id": "rid",
        }
    }
