"""Liveness and readiness answers shared by every function."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from shared import errors

CHECK_TIMEOUT_S = 1.0


async def healthz(_: Request, __: dict[str, str]) -> Response:
    """Liveness: the process is up and serving; dependencies are checked by readiness."""
    return JSONResponse({"status": "ok"})


async def readiness(checks: dict[str, Callable[[], Awaitable[Any]]]) -> Response:
    """Run every check concurrently with a short timeout; 503 names each one that failed."""

    async def run(check: Callable[[], Awaitable[Any]]) -> str | None:
        try:
            await asyncio.wait_for(check(), CHECK_TIMEOUT_S)
        except Exception as exc:
            return type(exc).__name__ or "error"
        return None

    names = list(checks)
    results = await asyncio.gather(*(run(checks[name]) for name in names))
    failed = {name: error for name, error in zip(names, results, strict=True) if error}
    if failed:
        raise errors.Unavailable(
            f"not ready: {', '.join(sorted(failed))}",
            details=[
                {"dependency": name, "error": error} for name, error in sorted(failed.items())
            ],
            retry_after=5,
        )
    return JSONResponse({"status": "ready", "checks": {name: "ok" for name in names}})
