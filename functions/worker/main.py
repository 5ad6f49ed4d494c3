"""The worker function: Pub/Sub pushes each message of the jobs topic here (with an OIDC token of
the push identity) and the job it names runs (`shared.jobs.worker`). A 2xx answer acknowledges
the message; any other has it delivered again, then dead-lettered.
"""

from __future__ import annotations

import functions_framework.aio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

# coldstart comes first: it pauses the garbage collector while the SDKs load (see its docstring).
from shared import coldstart, registry, runtime, web
from shared.auth.invoker import InvokerAuth
from shared.health import healthz, readyz
from shared.jobs.worker import parse_delivery

settings = runtime.init_process()
invokers = InvokerAuth(settings)


async def post_message(request: Request, _: dict[str, str]) -> Response:
    await invokers.caller(request, ("push", "operator"))
    body = await web.read_json_value(request, settings.max_body_bytes)
    worker = runtime.job_worker()
    delivery = parse_delivery(
        {k.lower(): v for k, v in request.headers.items()}, body, worker.kinds
    )
    outcome = await worker.handle(delivery)
    return JSONResponse({**outcome, "request_id": web.current_request_id()})


router = web.Router.serve(
    registry.WORKER,
    {
        "post_message": post_message,
        "healthz": healthz,
        "readyz": readyz("firestore", "redis", optional=["redis"]),
    },
    after_first=coldstart.resume,
)


@functions_framework.aio.http
async def worker(request: Request) -> Response:
    return await router(request)
