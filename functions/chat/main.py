"""The chat function: ``POST /v1/chat``, decisions on proposed actions, the conversation reads and
deletes, and the erasure of the caller (``DELETE /v1/me``), as JSON."""

from __future__ import annotations

import functions_framework.aio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

# coldstart comes first: it pauses the garbage collector while the SDKs load (see its docstring).
from shared import coldstart, registry, runtime, web
from shared.chat import Caller
from shared.contracts import (
    ChatRequest,
    ConfirmationDecision,
    Erased,
    FeedbackRequest,
    HandoffList,
    HandoffQuery,
    OperatorReply,
    PageQuery,
)
from shared.cors import Cors
from shared.health import healthz, readyz
from shared.idempotency import Seal, StoredResponse, body_hash

settings = runtime.init_process()


def caller(request: Request) -> Caller:
    return web.caller(request)


async def post_chat(request: Request, _: dict[str, str]) -> Response:
    body = await web.read_json(request, ChatRequest, settings.max_body_bytes)
    who, request_id = caller(request), web.current_request_id()

    async def answer(seal: Seal | None = None) -> StoredResponse:
        reply = await runtime.chat_service().chat(body, who, request_id, seal)
        return StoredResponse(200, reply.model_dump_json().encode())

    key = request.headers.get("idempotency-key", body.request_id)
    if key is None:
        stored = await answer()
    else:
        payload = body.model_dump(mode="json")
        stored = await runtime.idempotency().run(who.subject, key, body_hash(payload), answer)
    return Response(stored.body, status_code=stored.status, media_type=stored.media_type)


async def post_confirmation(request: Request, params: dict[str, str]) -> Response:
    """Approve or deny a proposed action; the decision counts once, replays get its answer."""
    body = await web.read_json(request, ConfirmationDecision, settings.max_body_bytes)
    who, request_id = caller(request), web.current_request_id()
    confirmation_id = params["confirmation_id"]

    async def answer(seal: Seal | None = None) -> StoredResponse:
        service = runtime.chat_service()
        reply = await service.confirm(who, confirmation_id, body.decision, request_id, seal)
        return StoredResponse(200, reply.model_dump_json().encode())

    payload = {"confirmation_id": confirmation_id, **body.model_dump(mode="json")}
    key = f"\x1fconfirmation:{confirmation_id}"  # no HTTP header carries \x1f: not a client's
    stored = await runtime.idempotency().run(who.subject, key, body_hash(payload), answer)
    return Response(stored.body, status_code=stored.status, media_type=stored.media_type)


async def list_conversations(request: Request, _: dict[str, str]) -> Response:
    page = web.read_query(request, PageQuery)
    result = await runtime.chat_service().list_conversations(caller(request), page)
    return JSONResponse(result.model_dump(mode="json"))


async def get_conversation(request: Request, params: dict[str, str]) -> Response:
    page = web.read_query(request, PageQuery)
    result = await runtime.chat_service().conversation(
        caller(request), params["conversation_id"], page
    )
    return JSONResponse(result.model_dump(mode="json"))


async def delete_conversation(request: Request, params: dict[str, str]) -> Response:
    result = await runtime.chat_service().delete_conversation(
        caller(request), params["conversation_id"]
    )
    return JSONResponse(result.model_dump(mode="json"))


async def post_feedback(request: Request, params: dict[str, str]) -> Response:
    body = await web.read_json(request, FeedbackRequest, settings.max_body_bytes)
    result = await runtime.chat_service().rate(
        caller(request), params["conversation_id"], params["message_id"], body
    )
    return JSONResponse(result.model_dump(mode="json"))


async def erase_me(request: Request, _: dict[str, str]) -> Response:
    report = (await runtime.eraser().erase(caller(request).subject)).as_dict()
    del report["dry_run"]
    return JSONResponse(Erased(**report).model_dump(mode="json"))


async def export_me(request: Request, _: dict[str, str]) -> Response:
    job, created = await runtime.job_service().export(caller(request).subject)
    headers = {"Location": f"/v1/jobs/{job.job_id}"}
    return JSONResponse(job.model_dump(mode="json"), 202 if created else 200, headers)


async def get_job(request: Request, params: dict[str, str]) -> Response:
    job = await runtime.job_service().get(params["job_id"], caller(request).subject)
    return JSONResponse(job.model_dump(mode="json"))


async def list_handoffs(request: Request, _: dict[str, str]) -> Response:
    query = web.read_query(request, HandoffQuery)
    items = await runtime.handoffs().list(query.status)
    return JSONResponse(HandoffList(handoffs=items).model_dump(mode="json"))


async def reply_handoff(request: Request, params: dict[str, str]) -> Response:
    body = await web.read_json(request, OperatorReply, settings.max_body_bytes)
    operator = web.principal(request).subject
    sent = await runtime.handoffs().reply(params["conversation_id"], operator, body.text)
    return JSONResponse(sent.model_dump(mode="json"), 201)


async def close_handoff(request: Request, params: dict[str, str]) -> Response:
    closed = await runtime.handoffs().close(params["conversation_id"])
    return JSONResponse(closed.model_dump(mode="json"))


router = web.Router.serve(
    registry.CHAT,
    {
        "post_chat": post_chat,
        "post_confirmation": post_confirmation,
        "list_conversations": list_conversations,
        "get_conversation": get_conversation,
        "delete_conversation": delete_conversation,
        "post_feedback": post_feedback,
        "erase_me": erase_me,
        "export_me": export_me,
        "get_job": get_job,
        "list_handoffs": list_handoffs,
        "reply_handoff": reply_handoff,
        "close_handoff": close_handoff,
        "healthz": healthz,
        "readyz": readyz("redis", "firestore", "vertex", optional=["redis"]),
    },
    guard=runtime.guard,
    cors=Cors(settings.cors_origins),
    after_first=coldstart.resume,
)


@functions_framework.aio.http
async def chat(request: Request) -> Response:
    return await router(request)
