"""The reports function: Cloud Scheduler (or an operator) posts ``{"action": "business_metrics"}``
each night; yesterday's resolution rate, CSAT and deflection rate are computed, kept in
``business_days`` and written to Cloud Monitoring. The caller's OIDC token is checked first.
"""

from __future__ import annotations

import functions_framework.aio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

# coldstart comes first: it pauses the garbage collector while the SDKs load (see its docstring).
from shared import coldstart, registry, runtime, web
from shared.auth.invoker import InvokerAuth
from shared.business_metrics import ReportCall, run
from shared.health import healthz, readyz

settings = runtime.init_process()
invokers = InvokerAuth(settings)


async def post_action(request: Request, _: dict[str, str]) -> Response:
    await invokers.caller(request)
    call = await web.read_json(request, ReportCall, settings.max_body_bytes)
    report = await run(settings, runtime.firestore(), call)
    return JSONResponse({**report, "request_id": web.current_request_id()})


router = web.Router.serve(
    registry.REPORTS,
    {"post_action": post_action, "healthz": healthz, "readyz": readyz("firestore")},
    after_first=coldstart.resume,
)


@functions_framework.aio.http
async def reports(request: Request) -> Response:
    return await router(request)
