"""The backup function: Cloud Scheduler (or an operator) posts ``{"action": ...}``.

Actions: ``run`` (daily), ``verify`` (weekly), ``prune`` (daily), ``list``, and ``restore`` (for
operators only, never the scheduler's identity). The caller's Google-signed OIDC token is checked
before the body is read.
"""

from __future__ import annotations

import functions_framework.aio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

# coldstart comes first: it pauses the garbage collector while the SDKs load (see its docstring).
from shared import coldstart, registry, runtime, web
from shared.auth.invoker import InvokerAuth
from shared.backup.service import BackupCall, perform
from shared.health import healthz, readyz

settings = runtime.init_process()
invokers = InvokerAuth(settings)


async def post_action(request: Request, _: dict[str, str]) -> Response:
    invoker = await invokers.caller(request)
    call = await web.read_json(request, BackupCall, settings.max_body_bytes)
    report = await perform(settings, call, invoker)
    return JSONResponse({**report, "request_id": web.current_request_id()})


router = web.Router.serve(
    registry.BACKUP,
    {"post_action": post_action, "healthz": healthz, "readyz": readyz("firestore")},
    after_first=coldstart.resume,
)


@functions_framework.aio.http
async def backup(request: Request) -> Response:
    return await router(request)
