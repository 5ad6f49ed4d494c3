"""The chat function: ``POST /v1/chat`` answers a message as JSON."""

from __future__ import annotations

import functions_framework.aio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from shared import runtime, web
from shared.chat import Caller
from shared.contracts import ChatRequest
from shared.health import healthz

settings = runtime.init_process()
ANONYMOUS = Caller(subject="anonymous")


async def post_chat(request: Request, _: dict[str, str]) -> Response:
    body = await web.read_json(request, ChatRequest, settings.max_body_bytes)
    answer = await runtime.chat_service().chat(body, ANONYMOUS, web.current_request_id())
    return JSONResponse(answer.model_dump())


router = web.Router(
    [
        web.Route("POST", "/v1/chat", post_chat),
        web.Route("GET", "/healthz", healthz),
    ]
)


@functions_framework.aio.http
async def chat(request: Request) -> Response:
    return await router(request)
