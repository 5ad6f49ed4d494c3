"""Liveness and readiness answers shared by every function (bodies: `contracts.Liveness`,
`contracts.Readiness`; not ready is 503 `unavailable` in the error envelope)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from shared import errors
from shared.contracts import Liveness, Readiness

CHECK_TIMEOUT_S = 1.0


async def healthz(_: Request, __: dict[str, str]) -> Response:
    """Liveness: the process is up and serving; dependencies are checked by readiness."""
    return JSONResponse(Liveness().model_dump(mode="json"))


async def readiness(
    checks: dict[str, Callable[[], Awaitable[Any]]], optional: Iterable[str] = ()
) -> Response:
    """Run the checks one after the other, each with a short timeout; 503 names each that failed.

    One at a time: a check's first run may load an SDK and hold the event loop (a cold process),
    which must not eat into another check's timeout.
    """

    async def run(check: Callable[[], Awaitable[Any]]) -> str | None:
        try:
            await asyncio.wait_for(check(), CHECK_TIMEOUT_S)
        except Exception as exc:
            return type(exc).__name__ or "error"
        return None

    names = list(checks)
    results = [await run(checks[name]) for name in names]
    failed = {name: error for name, error in zip(names, results, strict=True) if error}
    degraded = {name: error for name, error in failed.items() if name in set(optional)}
    failed = {name: error for name, error in failed.items() if name not in degraded}
    if degraded and not failed:  # serving without it: Redis down means no cache, local limits
        states = {
            name: f"degraded ({degraded[name]})" if name in degraded else "ok" for name in names
        }
        return JSONResponse(Readiness(status="degraded", checks=states).model_dump(mode="json"))
    if failed:
        raise errors.Unavailable(
            f"not ready: {', '.join(sorted(failed))}",
            details=[
                {"dependency": name, "error": error} for name, error in sorted(failed.items())
            ],
            retry_after=5,
        )
    ready = Readiness(status="ready", checks=dict.fromkeys(names, "ok"))
    return JSONResponse(ready.model_dump(mode="json"))


def _dependency(name: str) -> Callable[[], Awaitable[Any]]:
    """One dependency's check, on this process's own clients (built on first use)."""
    from shared import runtime

    checks: dict[str, Callable[[], Awaitable[Any]]] = {
        "redis": lambda: runtime.memorystore().redis.ping(),
        "firestore": lambda: runtime.firestore().collection("config").document("cache").get(),
        "vertex": lambda: runtime.llm().ready(CHECK_TIMEOUT_S),
    }
    return checks[name]


def readyz(
    *dependencies: str, optional: Iterable[str] = ()
) -> Callable[[Request, dict[str, str]], Awaitable[Response]]:
    """The ``/readyz`` handler of a function that needs ``dependencies`` (redis, firestore,
    vertex): 200 when each answers now, 503 naming those that do not; an ``optional`` one that
    fails makes it 200 ``degraded`` (the function serves without it)."""

    async def handler(_: Request, __: dict[str, str]) -> Response:
        checks = {name: _dependency(name) for name in dependencies}
        return await readiness(checks, optional)

    return handler
