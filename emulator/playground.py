"""The playground: a web page of the local stack for trying the API in a browser (dev only).

Serves the page (``playground/``, built by ``make playground``), the TypeScript client it runs on
(``clients/typescript/dist``), ID tokens for a fixed set of development users, and a view of the
Vertex AI emulator's received calls and the answer cache's hits. It binds to loopback only,
answers only requests addressed to a loopback name (no DNS rebinding), mints tokens only for a
page of its own origin, holds no state, and ships in no image: the functions never import it.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

from emulator import devtokens
from shared.cache_maintenance.analysis import ClassCounters, stats_pattern

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "playground"
BUILT = PAGE / "dist"
CLIENT = ROOT / "clients" / "typescript" / "dist" / "src"
TOKEN_TTL_S = 3600
LOOPBACK_NAMES = ["127.0.0.1", "localhost", "[::1]"]
RECENT_REQUESTS = 20

# The users a developer may pick: a name, what the token's scopes claim adds, and why to pick it.
USERS: dict[str, tuple[list[str], str]] = {
    "alice": ([], "an app user"),
    "olivia": (["tools:orders"], "an app user who may cancel orders (confirm tool)"),
    "sam": (["handoffs"], "support staff: hand-off routes"),
}


@dataclass(frozen=True)
class Upstreams:
    """Where the page's API calls go and where the emulator view reads from."""

    chat_url: str
    stream_url: str
    vertex_admin: str
    redis_url: str
    key_dir: Path
    issuer: str
    audience: str


NOT_BUILT = (
    "<!doctype html><title>Playground not built</title><h1>Playground not built</h1>"
    "<p>Run <code>make playground</code> (or <code>make dev</code>) and reload.</p>"
)


def app(upstreams: Upstreams) -> Starlette:
    """The playground's ASGI app."""

    async def index(_: Request) -> Response:
        if not (BUILT / "app.js").exists() or not (CLIENT / "index.js").exists():
            return Response(NOT_BUILT, status_code=503, media_type="text/html")
        return FileResponse(PAGE / "index.html", headers={"Cache-Control": "no-store"})

    async def config(_: Request) -> JSONResponse:
        users = [{"name": name, "about": about} for name, (_, about) in USERS.items()]
        return JSONResponse(
            {"chat_url": upstreams.chat_url, "stream_url": upstreams.stream_url, "users": users}
        )

    async def token(request: Request) -> JSONResponse:
        origin = request.headers.get("origin")
        if origin != f"{request.url.scheme}://{request.headers.get('host', '')}":
            return _error(403, "permission_denied", "tokens are for the playground's own page")
        name = request.path_params["user"]
        if name not in USERS:
            return _error(404, "not_found", f"no development user {name[:40]!r}")
        scopes, _ = USERS[name]
        claims: dict[str, Any] = {"scopes": scopes} if scopes else {}
        minted = devtokens.mint(
            devtokens.ensure_key(upstreams.key_dir),
            user=name,
            issuer=upstreams.issuer,
            audience=upstreams.audience,
            ttl_s=TOKEN_TTL_S,
            **claims,
        )
        return JSONResponse({"token": minted, "expires_in_s": TOKEN_TTL_S})

    async def emulator(request: Request) -> JSONResponse:
        client: httpx.AsyncClient = request.app.state.http
        try:
            calls = (await client.get(f"{upstreams.vertex_admin}/calls")).json()
            recent = (await client.get(f"{upstreams.vertex_admin}/requests")).json()["requests"]
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            return _error(503, "unavailable", f"the Vertex AI emulator did not answer: {exc}")
        return JSONResponse(
            {
                "calls": calls,
                "requests": recent[-RECENT_REQUESTS:],
                "cache": await cache_counters(upstreams.redis_url),
            }
        )

    @contextlib.asynccontextmanager
    async def lifespan(instance: Starlette) -> AsyncIterator[None]:
        async with httpx.AsyncClient(timeout=3) as http:
            instance.state.http = http
            yield

    return Starlette(
        routes=[
            Route("/", index),
            Route("/api/config", config),
            Route("/api/users/{user}/token", token, methods=["POST"]),
            Route("/api/emulator", emulator),
            Route("/healthz", lambda _: JSONResponse({"status": "ok"})),
            Mount("/app", _BuildOutput(directory=BUILT, check_dir=False), name="app"),
            Mount("/client", _BuildOutput(directory=CLIENT, check_dir=False), name="client"),
            Mount("/static", StaticFiles(directory=PAGE / "static"), name="static"),
        ],
        lifespan=lifespan,
        exception_handlers={HTTPException: _http_error},
        middleware=[Middleware(TrustedHostMiddleware, allowed_hosts=LOOPBACK_NAMES)],
    )


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    """Starlette's own 404 and 405 (no route, no file, wrong method) in the envelope too."""
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    code = {404: "not_found", 405: "method_not_allowed"}.get(status, "bad_request")
    return _error(status, code, str(getattr(exc, "detail", "error"))[:200])


class _BuildOutput(StaticFiles):
    """The files of a build that may not have run yet: until it has, 503 saying how to build
    (the server may start before `make playground`, and serves the files once they exist)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.directory is None or not await anyio.Path(self.directory).is_dir():
            missing = _error(503, "unavailable", "not built: run `make playground`")
            await missing(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


async def cache_counters(redis_url: str) -> dict[str, dict[str, int]]:
    """The answer cache's counters per query class, summed over the hours Redis still holds."""
    import redis.asyncio as aioredis

    totals: dict[str, ClassCounters] = {}
    client = aioredis.Redis.from_url(redis_url, socket_timeout=2, decode_responses=True)
    try:
        async for name in client.scan_iter(match=stats_pattern(), count=500):
            query_class = str(name).split(":")[2]
            raw = await client.hgetall(name)
            counts = {str(k): int(v) for k, v in raw.items() if str(v).isdigit()}
            totals.setdefault(query_class, ClassCounters()).add(counts)
    except (OSError, aioredis.RedisError):
        return {}
    finally:
        await client.aclose()
    return {
        name: {"hits": c.hits, "misses": c.misses, "stores": c.stores}
        for name, c in sorted(totals.items())
    }


def _error(status: int, code: str, message: str) -> JSONResponse:
    """The API's error envelope, so the page handles every failure one way."""
    body = {"error": {"code": code, "message": message, "details": [], "request_id": ""}}
    return JSONResponse(body, status_code=status)


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstreams", required=True, help="JSON of Upstreams' fields")
    args = parser.parse_args()
    if not ipaddress.ip_address(args.host).is_loopback:
        parser.error(f"--host must be a loopback address (the page mints tokens), not {args.host}")
    fields = json.loads(args.upstreams)
    upstreams = Upstreams(**{**fields, "key_dir": Path(fields["key_dir"])})
    uvicorn.run(app(upstreams), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
