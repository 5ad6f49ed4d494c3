"""The stream function: ``POST /v1/chat:stream`` answers a message as Server-Sent Events, and
``/v1/sessions`` holds WebSocket sessions (`shared.sessions`) over the same streams.

A client that lost its connection sends the same request again with ``Last-Event-ID`` and gets
the rest of the stream; with an ``Idempotency-Key`` a replay gets the same stream from its start.
Sessions live here rather than in a function of their own because they are streams: the same
buffers, flights and resumption, the same long request timeout and concurrency, one warm pool.
"""

from __future__ import annotations

import functions_framework.aio
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.websockets import WebSocket

# coldstart comes first: it pauses the garbage collector while the SDKs load (see its docstring).
from shared import coldstart, registry, runtime, sse, web
from shared.contracts import ChatRequest
from shared.cors import Cors
from shared.health import healthz, readyz
from shared.sessions.session import Session

settings = runtime.init_process()
cors = Cors(settings.cors_origins)


async def post_stream(request: Request, _: dict[str, str]) -> Response:
    who = web.caller(request)
    last_event_id = request.headers.get("last-event-id")
    if last_event_id:
        body = await runtime.streams().resume(last_event_id, who.subject)
    else:
        message = await web.read_json(request, ChatRequest, settings.max_body_bytes)
        key = request.headers.get("idempotency-key", message.request_id)
        body = await runtime.stream_requests().open(message, who, web.current_request_id(), key)
    return StreamingResponse(body, media_type=sse.MEDIA_TYPE, headers=sse.HEADERS)


async def open_session(websocket: WebSocket) -> None:
    if cors.refuses(websocket):
        await websocket.close(code=4403)  # before the handshake: the page's origin gets a 403
        return
    hub, requests = runtime.streams(), runtime.stream_requests()
    notices = runtime.notice_hub()
    await Session(websocket, runtime.guard(), requests, hub, settings, notices).run()


router = web.Router.serve(
    registry.STREAM,
    {
        "post_stream": post_stream,
        "open_session": open_session,
        "healthz": healthz,
        "readyz": readyz("redis", "firestore", "vertex", optional=["redis"]),
    },
    guard=runtime.guard,
    cors=cors,
    after_first=coldstart.resume,
)


@functions_framework.aio.http
async def stream(request: Request) -> Response:
    return await router(request)
