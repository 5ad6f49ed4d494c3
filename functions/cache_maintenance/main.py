"""The cache-maintenance function (Cloud Scheduler); for now it answers its health check."""

from __future__ import annotations

import functions_framework.aio
from starlette.requests import Request
from starlette.responses import Response

from shared import runtime, web
from shared.health import healthz

settings = runtime.init_process()

router = web.Router([web.Route("GET", "/healthz", healthz)])


@functions_framework.aio.http
async def cache_maintenance(request: Request) -> Response:
    return await router(request)
