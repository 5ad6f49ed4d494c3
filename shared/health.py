"""Liveness answer shared by every function."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response


async def healthz(_: Request, __: dict[str, str]) -> Response:
    """Liveness: the process is up and serving; dependencies are checked by readiness."""
    return JSONResponse({"status": "ok"})
