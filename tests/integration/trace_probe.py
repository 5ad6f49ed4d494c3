"""One chat request through the chat function in this very process, its spans kept by an
in-memory exporter; prints the spans and the log lines as one JSON object. Run by test_traces."""

from __future__ import annotations

import asyncio
import io
import json
import os
import sys
from typing import Any

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


async def one_request(router: Any) -> int:
    import httpx
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.routing import Route

    async def endpoint(request: Request) -> Any:
        return await router(request)

    app = Starlette(routes=[Route("/{path:path}", endpoint, methods=["POST"])])
    headers = {"Authorization": f"Bearer {os.environ['TRACE_PROBE_TOKEN']}"}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://chat"
    ) as client:
        answer = await client.post(
            "/v1/chat",
            json={"message": "trace me"},
            headers={**headers, "traceparent": TRACEPARENT},
        )
    return answer.status_code


def main() -> None:
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from shared import telemetry
    from shared.settings import get_settings

    exporter = InMemorySpanExporter()
    telemetry.configure(get_settings(), exporter=exporter)
    out, sink = sys.stdout, io.StringIO()
    sys.stdout = sink  # the function's JSON log lines
    import functions.chat.main as chat

    status = asyncio.run(one_request(chat.router))
    telemetry.flush()
    sys.stdout = out
    spans = [
        {
            "name": s.name,
            "trace_id": f"{s.context.trace_id:032x}",
            "span_id": f"{s.context.span_id:016x}",
            "parent": f"{s.parent.span_id:016x}" if s.parent else None,
        }
        for s in exporter.get_finished_spans()
    ]
    logs = [json.loads(line) for line in sink.getvalue().splitlines() if line.startswith("{")]
    print(json.dumps({"status": status, "spans": spans, "logs": logs}))


if __name__ == "__main__":
    main()
