"""The stream function: ``POST /v1/chat:stream`` answers a message as Server-Sent Events.

A client that lost its connection sends the same request again with ``Last-Event-ID`` and gets
the rest of the stream.
"""

from __future__ import annotations

import functions_framework.aio
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

# coldstart comes first: it pauses the garbage collector while the SDKs load (see its docstring).
from shared import coldstart, registry, runtime, sse, web
from shared.contracts import ChatRequest
from shared.cors import Cors
from shared.health import healthz, readyz

settings = runtime.init_process()


async def post_stream(request: Request, _: dict[str, str]) -> Response:
    who = web.caller(request)
    last_event_id = request.headers.get("last-event-id")
    if last_event_id:
        body = await runtime.streams().resume(last_event_id, who.subject)
    else:
        message = await web.read_json(request, ChatRequest, settings.max_body_bytes)
        events = runtime.chat_service().stream(message, who, web.current_request_id())
        first = await anext(events)  # errors before the first event are plain HTTP errors
        sid = first[1].message_id  # type: ignore[attr-defined]
        body = await runtime.streams().start(
            sid, who.subject, first, events, web.current_request_id()
        )
    return StreamingResponse(body, media_type=sse.MEDIA_TYPE, headers=sse.HEADERS)


router = web.Router.serve(
    registry.STREAM,
    {
        "post_stream": post_stream,
        "healthz": healthz,
        "readyz": readyz("redis", "firestore", "vertex", optional=["redis"]),
    },
    guard=runtime.guard,
    cors=Cors(settings.cors_origins),
    after_first=coldstart.resume,
)


@functions_framework.aio.http
async def stream(request: Request) -> Response:
    return await router(request)
