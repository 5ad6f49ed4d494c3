"""A small order API the local stack declares as the agent's demo tools (``emulator/tools.toml``).

``GET /orders/{id}`` answers an order's status, ``POST /orders/{id}/cancel`` cancels it; both
need the bearer token the stack gives the tool as its credential, so a call that reaches the API
proves the connector sent the tool's credential and not the caller's. ``GET /slow?seconds=N``
hangs, ``GET /big?kb=N`` answers a large document; ``GET /requests`` lists every request received
(method, path, whether the credential matched), ``POST /reset`` clears that list.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import re
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

ORDER_ID = re.compile(r"^[A-Za-z0-9-]{1,32}\Z")
STATUSES = ("processing", "shipped", "in transit", "delivered")
CARRIERS = ("DHL", "UPS", "La Poste", "FedEx")


def order(order_id: str) -> dict[str, Any]:
    """The (deterministic) state of an order."""
    digest = hashlib.sha256(order_id.encode()).digest()
    return {
        "order_id": order_id,
        "status": STATUSES[digest[0] % len(STATUSES)],
        "carrier": CARRIERS[digest[1] % len(CARRIERS)],
        "eta": f"2026-12-{10 + digest[2] % 18:02d}",
    }


def app(token: str) -> Starlette:
    received: list[dict[str, Any]] = []
    cancelled: set[str] = set()

    def record(request: Request) -> bool:
        authorized = request.headers.get("authorization") == f"Bearer {token}"
        received.append(
            {
                "method": request.method,
                "path": request.url.path,
                "authorized": authorized,
                "forwarded_auth": "x-forwarded-authorization" in request.headers,
            }
        )
        return authorized

    def refuse() -> JSONResponse:
        return JSONResponse({"error": "missing or wrong credential"}, status_code=401)

    async def get_order(request: Request) -> JSONResponse:
        if not record(request):
            return refuse()
        order_id = request.path_params["order_id"]
        if not ORDER_ID.match(order_id):
            return JSONResponse({"error": "no such order"}, status_code=404)
        found = order(order_id)
        if order_id in cancelled:
            found["status"] = "cancelled"
        return JSONResponse(found)

    async def cancel(request: Request) -> JSONResponse:
        if not record(request):
            return refuse()
        order_id = request.path_params["order_id"]
        if not ORDER_ID.match(order_id):
            return JSONResponse({"error": "no such order"}, status_code=404)
        already = order_id in cancelled
        cancelled.add(order_id)
        return JSONResponse({"order_id": order_id, "status": "cancelled", "already": already})

    async def slow(request: Request) -> JSONResponse:
        record(request)
        seconds = min(float(request.query_params.get("seconds", "30")), 120.0)
        await asyncio.sleep(seconds)
        return JSONResponse({"slept": seconds})

    async def big(request: Request) -> JSONResponse:
        record(request)
        kb = min(int(request.query_params.get("kb", "256")), 4096)
        return JSONResponse({"items": ["x" * 1000 for _ in range(kb)]})

    async def requests(_: Request) -> JSONResponse:
        return JSONResponse({"requests": received})

    async def reset(_: Request) -> JSONResponse:
        received.clear()
        cancelled.clear()
        return JSONResponse({"requests": []})

    async def health(_: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[
            Route("/orders/{order_id}", get_order, methods=["GET"]),
            Route("/orders/{order_id}/cancel", cancel, methods=["POST"]),
            Route("/slow", slow, methods=["GET"]),
            Route("/big", big, methods=["GET"]),
            Route("/requests", requests, methods=["GET"]),
            Route("/reset", reset, methods=["POST"]),
            Route("/healthz", health, methods=["GET"]),
        ]
    )


def main() -> None:
    import os

    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    token = os.environ.get("NGX_DEMO_API_TOKEN", "demo-token")
    uvicorn.run(app(token), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
