"""The stream function: ``POST /v1/chat:stream`` answers a message as Server-Sent Events."""

from __future__ import annotations

import functions_framework.aio
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from shared import runtime, sse, web
from shared.chat import Caller
from shared.contracts import ChatRequest
from shared.cors import Cors
from shared.health import healthz

settings = runtime.init_process()


async def post_stream(request: Request, _: dict[str, str]) -> Response:
    body = await web.read_json(request, ChatRequest, settings.max_body_bytes)
    who = Caller(subject=web.principal(request).subject)
    events = runtime.chat_service().stream(body, who, web.current_request_id())
    first = await anext(events)  # errors before the first event are answered as plain HTTP errors
    return StreamingResponse(
        sse.encode(first, events, web.current_request_id()),
        media_type=sse.MEDIA_TYPE,
        headers=sse.HEADERS,
    )


router = web.Router(
    [
        web.Route("POST", "/v1/chat:stream", post_stream, scope="chat"),
        web.Route("GET", "/healthz", healthz),
    ],
    guard=runtime.guard,
    cors=Cors(settings.cors_origins),
)


@functions_framework.aio.http
async def stream(request: Request) -> Response:
    return await router(request)
