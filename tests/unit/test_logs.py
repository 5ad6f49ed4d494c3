"""Log lines are single JSON objects in Cloud Logging's shape, with request id and trace."""

from __future__ import annotations

import json
import logging

from shared.logs import CloudLoggingFormatter, parse_trace_headers, request_id_var, trace_var

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def _format(message: str, **extra: object) -> dict[str, object]:
    record = logging.makeLogRecord({"msg": message, "levelname": "WARNING", "name": "t", **extra})
    line = CloudLoggingFormatter("proj").format(record)
    assert "\n" not in line
    parsed: dict[str, object] = json.loads(line)
    return parsed


def test_line_carries_severity_message_and_extras() -> None:
    entry = _format("hello", latency_ms=12.5)
    assert entry["severity"] == "WARNING"
    assert entry["message"] == "hello"
    assert entry["latency_ms"] == 12.5
    assert "request_id" not in entry


def test_line_carries_request_id_and_trace() -> None:
    rid = request_id_var.set("req-1")
    trace = trace_var.set((TRACE, "00f067aa0ba902b7"))
    try:
        entry = _format("x")
    finally:
        trace_var.reset(trace)
        request_id_var.reset(rid)
    assert entry["request_id"] == "req-1"
    assert entry["logging.googleapis.com/trace"] == f"projects/proj/traces/{TRACE}"
    assert entry["logging.googleapis.com/spanId"] == "00f067aa0ba902b7"


def test_traceparent_is_parsed() -> None:
    header = f"00-{TRACE}-00f067aa0ba902b7-01"
    assert parse_trace_headers(header, None) == (TRACE, "00f067aa0ba902b7")


def test_cloud_trace_context_span_becomes_hex() -> None:
    assert parse_trace_headers(None, f"{TRACE}/1;o=1") == (TRACE, "0000000000000001")


def test_malformed_trace_headers_are_ignored() -> None:
    assert parse_trace_headers("garbage", "nothex/12") is None
    assert parse_trace_headers(f"00-{'0' * 32}-00f067aa0ba902b7-01", None) is None
