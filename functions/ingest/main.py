"""The ingest function: Eventarc posts Cloud Storage object events (finalized, deleted) as
CloudEvents; each changes the retrieval corpus. The caller's Google-signed OIDC token (the
trigger's service account) is checked before the body is read.
"""

from __future__ import annotations

import functions_framework.aio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

# coldstart comes first: it pauses the garbage collector while the SDKs load (see its docstring).
from shared import coldstart, registry, runtime, web
from shared.auth.invoker import InvokerAuth
from shared.health import healthz, readyz
from shared.retrieval.storage_events import CLOUDEVENT_TYPES, parse

settings = runtime.init_process()
invokers = InvokerAuth(settings)


async def post_event(request: Request, _: dict[str, str]) -> Response:
    await invokers.caller(request, ("events", "operator"))
    body = await web.read_json_value(request, settings.max_body_bytes, CLOUDEVENT_TYPES)
    event = parse({k.lower(): v for k, v in request.headers.items()}, body)
    outcome = await runtime.event_ingestion().handle(event)
    return JSONResponse({**outcome, "request_id": web.current_request_id()})


router = web.Router.serve(
    registry.INGEST,
    {
        "post_event": post_event,
        "healthz": healthz,
        "readyz": readyz("firestore", "vertex", "redis", optional=["redis"]),
    },
    after_first=coldstart.resume,
)


@functions_framework.aio.http
async def ingest(request: Request) -> Response:
    return await router(request)
