"""Structured JSON logs in Cloud Logging's format, one object per line on stdout.

Cloud Run forwards stdout to Cloud Logging, which reads ``severity``, ``message``,
``logging.googleapis.com/trace`` and ``logging.googleapis.com/spanId`` from each line.
"""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from shared import telemetry
from shared.redact import Redactor

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
trace_var: ContextVar[tuple[str, str | None] | None] = ContextVar("trace", default=None)
# The caller, as a keyed hash: logs of one user correlate without naming them.
subject_var: ContextVar[str | None] = ContextVar("subject", default=None)

_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


# Fields the product writes itself and that hold no personal data: never scanned for it.
_NOT_PERSONAL = {"severity", "time", "logger", "request_id", "subject"}


class CloudLoggingFormatter(logging.Formatter):
    """Formats a record as one JSON line with the fields Cloud Logging understands; every other
    string in it goes through ``redactor`` (personal data never reaches the log sink)."""

    def __init__(self, project_id: str, redactor: Redactor | None = None) -> None:
        super().__init__()
        self.project_id = project_id
        self.redactor = redactor or Redactor()

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "severity": record.levelname,
            "message": record.getMessage(),
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "logger": record.name,
        }
        request_id = request_id_var.get()
        if request_id:
            entry["request_id"] = request_id
        subject = subject_var.get()
        if subject:
            entry["subject"] = subject
        # The span this line was written in (tracing on), else the caller's trace header.
        current = telemetry.current_trace_ids()
        trace = (current[0], current[1]) if current else trace_var.get()
        if trace:
            trace_id, span_id = trace
            entry["logging.googleapis.com/trace"] = f"projects/{self.project_id}/traces/{trace_id}"
            if span_id:
                entry["logging.googleapis.com/spanId"] = span_id
            if current:
                entry["logging.googleapis.com/trace_sampled"] = current[2]
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["stack_trace"] = self.formatException(record.exc_info)
        for key, value in entry.items():
            if key not in _NOT_PERSONAL and not key.startswith("logging.googleapis.com/"):
                entry[key] = self.redactor.value(value)
        return json.dumps(entry, default=str, ensure_ascii=False)


# HTTP clients that log every request's URL at INFO: a tool's URL carries the model's arguments
# (and the JWKS fetch is not worth a line), so only their warnings are kept.
QUIET_LIBRARIES = ("httpx", "httpcore")


def configure_logging(
    project_id: str, level: str = "INFO", redactor: Redactor | None = None
) -> None:
    """Route the root logger to stdout as redacted JSON lines; safe to call more than once."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(CloudLoggingFormatter(project_id, redactor))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for chatty in QUIET_LIBRARIES:
        logging.getLogger(chatty).setLevel(max(logging.WARNING, root.level))


def parse_trace_headers(
    traceparent: str | None, cloud_trace: str | None
) -> tuple[str, str | None] | None:
    """Trace and span ids from W3C ``traceparent`` or ``X-Cloud-Trace-Context``, if well formed."""
    if traceparent:
        parts = traceparent.strip().split("-")
        if len(parts) == 4 and len(parts[1]) == 32 and len(parts[2]) == 16:
            trace_id, span_id = parts[1].lower(), parts[2].lower()
            if _is_hex(trace_id) and _is_hex(span_id) and trace_id != "0" * 32:
                return trace_id, span_id
    if cloud_trace:
        trace_part, _, rest = cloud_trace.strip().partition("/")
        span = rest.split(";", 1)[0]
        # X-Cloud-Trace-Context carries a decimal span id; Cloud Logging wants 16 hex digits.
        span_hex = f"{int(span):016x}" if span.isdigit() and int(span) < 2**64 else None
        if len(trace_part) == 32 and _is_hex(trace_part):
            return trace_part.lower(), span_hex
    return None


def _is_hex(value: str) -> bool:
    try:
        int(value, 16)
    except ValueError:
        return False
    return True
