"""The cache-maintenance function: Cloud Scheduler (hourly) or an operator posts an action.

Actions: ``analyze`` (a report), ``apply`` (analyze, then write the recommended policy; running
functions pick it up within their reload interval) and ``invalidate`` (by tag or query class). The
caller's Google-signed OIDC token is checked before the body is read.
"""

from __future__ import annotations

import functions_framework.aio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

# coldstart comes first: it pauses the garbage collector while the SDKs load (see its docstring).
from shared import coldstart, registry, runtime, web
from shared.auth.invoker import InvokerAuth
from shared.cache_maintenance.jobs import CacheMaintenance
from shared.cache_maintenance.service import CacheCall, perform
from shared.health import healthz, readyz

settings = runtime.init_process()
invokers = InvokerAuth(settings)


async def post_action(request: Request, _: dict[str, str]) -> Response:
    invoker = await invokers.caller(request)
    call = await web.read_json(request, CacheCall, settings.max_body_bytes)
    jobs = CacheMaintenance(settings, runtime.memorystore(), runtime.firestore())
    report = await perform(jobs, call, invoker)
    return JSONResponse({**report, "request_id": web.current_request_id()})


router = web.Router.serve(
    registry.CACHE_MAINTENANCE,
    {"post_action": post_action, "healthz": healthz, "readyz": readyz("redis", "firestore")},
    after_first=coldstart.resume,
)


@functions_framework.aio.http
async def cache_maintenance(request: Request) -> Response:
    return await router(request)
