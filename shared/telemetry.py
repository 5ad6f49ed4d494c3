"""Traces: OpenTelemetry spans with the exporter chosen by ``NGX_TRACE_EXPORTER``.

``none`` (the default) imports nothing from OpenTelemetry, which keeps cold starts short; ``otlp``
sends to Google's Telemetry API (``telemetry.googleapis.com``, Google's current recommendation),
``gcp-trace`` uses the older Cloud Trace exporter, ``console`` prints spans as JSON to stdout.

Spans are batched. Under the aio server ``atexit`` does not run on SIGTERM, so
`install_flush_on_sigterm` wraps the serving process's SIGTERM handler to flush pending spans.
"""

from __future__ import annotations

import logging
import signal
import threading
from contextlib import AbstractContextManager
from typing import Any

from shared.settings import Settings

log = logging.getLogger("ngx.telemetry")
OTLP_ENDPOINT = "telemetry.googleapis.com:443"

_provider: Any = None
_tracer: Any = None
_flush_installed = False
_lock = threading.Lock()


class _NoSpan:
    """Stands in for a span, and for the context that opens one, when tracing is off: one shared
    object, so a request pays no allocation per span it would have had."""

    def set_attribute(self, key: str, value: Any) -> None:
        return None

    def record_exception(self, exc: BaseException) -> None:
        return None

    def __enter__(self) -> _NoSpan:
        return self

    def __exit__(self, *_: object) -> None:
        return None


_NO_SPAN = _NoSpan()


def configure(settings: Settings, exporter: Any = None) -> None:
    """Set up the tracer provider once per process; ``exporter`` overrides the setting (tests)."""
    global _provider, _tracer
    with _lock:
        if _provider is not None or (settings.trace_exporter == "none" and exporter is None):
            return
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        provider = TracerProvider(
            resource=Resource.create(
                {"service.name": settings.service_name, "gcp.project_id": settings.project_id}
            )
        )
        provider.add_span_processor(
            BatchSpanProcessor(
                exporter or _exporter(settings),
                schedule_delay_millis=settings.trace_export_delay_ms,
            )
        )
        trace.set_tracer_provider(provider)
        _provider, _tracer = provider, provider.get_tracer("ngx.agent")


def _exporter(settings: Settings) -> Any:
    kind = settings.trace_exporter
    if kind == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    if kind == "gcp-trace":
        from opentelemetry.exporter.cloud_trace import CloudTraceSpanExporter

        return CloudTraceSpanExporter(project_id=settings.project_id)  # type: ignore[no-untyped-call]
    import google.auth
    import google.auth.transport.grpc
    import google.auth.transport.requests
    import grpc
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    credentials, _ = google.auth.default()
    channel_credentials = grpc.composite_channel_credentials(
        grpc.ssl_channel_credentials(),
        grpc.metadata_call_credentials(
            google.auth.transport.grpc.AuthMetadataPlugin(  # type: ignore[no-untyped-call]
                credentials, google.auth.transport.requests.Request()
            )
        ),
    )
    return OTLPSpanExporter(endpoint=OTLP_ENDPOINT, credentials=channel_credentials)


def span(name: str, **attributes: Any) -> AbstractContextManager[Any]:
    """A span around a block (the shared no-op when tracing is off); exceptions are recorded."""
    if _tracer is None:
        return _NO_SPAN
    cm: AbstractContextManager[Any] = _tracer.start_as_current_span(name, attributes=attributes)
    return cm


def server_span(
    name: str, traceparent: str | None, cloud_trace: str | None
) -> AbstractContextManager[Any]:
    """The span of one request, child of the caller's: W3C ``traceparent`` first, else Cloud
    Run's ``X-Cloud-Trace-Context`` (``TRACE/SPAN;o=1``). Every span of the request nests in it."""
    if _tracer is None:
        return _NO_SPAN
    from opentelemetry import trace

    cm: AbstractContextManager[Any] = _tracer.start_as_current_span(
        name, context=_parent(traceparent, cloud_trace), kind=trace.SpanKind.SERVER
    )
    return cm


def _parent(traceparent: str | None, cloud_trace: str | None) -> Any:
    from opentelemetry import trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    if traceparent:
        extracted = TraceContextTextMapPropagator().extract({"traceparent": traceparent})
        if trace.get_current_span(extracted).get_span_context().is_valid:
            return extracted
    if cloud_trace:
        trace_part, _, rest = cloud_trace.strip().partition("/")
        span_part, _, options = rest.partition(";")
        try:
            trace_id, span_id = int(trace_part, 16), int(span_part or "0")
        except ValueError:
            return None
        if len(trace_part) == 32 and trace_id and 0 < span_id < 2**64:
            sampled = trace.TraceFlags(1 if options.strip() == "o=1" else 0)
            context = trace.SpanContext(trace_id, span_id, is_remote=True, trace_flags=sampled)
            return trace.set_span_in_context(trace.NonRecordingSpan(context))
    return None


def current_trace_ids() -> tuple[str, str, bool] | None:
    """The current span's trace id, span id (hex) and whether it is sampled, for the logs."""
    if _tracer is None:
        return None
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return f"{context.trace_id:032x}", f"{context.span_id:016x}", context.trace_flags.sampled


def flush(timeout_ms: int = 3000) -> bool:
    """Export every finished span now; True when the exporter confirmed within the timeout."""
    if _provider is None:
        return True
    return bool(_provider.force_flush(timeout_ms))


def install_flush_on_sigterm() -> None:
    """Flush spans when SIGTERM arrives, then run the handler that was there (the server's)."""
    global _flush_installed
    if _flush_installed or _provider is None:
        return
    if threading.current_thread() is not threading.main_thread():
        return
    previous = signal.getsignal(signal.SIGTERM)

    def on_sigterm(signum: int, frame: Any) -> None:
        flushed = flush()
        log.info("spans flushed on SIGTERM", extra={"flushed": flushed})
        if callable(previous):
            previous(signum, frame)
        elif previous == signal.SIG_DFL:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.raise_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, on_sigterm)
    _flush_installed = True
