"""CORS with an explicit origin allow-list: preflights answered, other origins get no headers."""

from __future__ import annotations

from starlette.requests import HTTPConnection, Request
from starlette.responses import Response

ALLOW_HEADERS = (
    "Authorization, Content-Type, X-API-Key, Idempotency-Key, X-Request-Id, Last-Event-ID"
)
EXPOSE_HEADERS = "X-Request-Id, Retry-After, RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset"


class Cors:
    def __init__(self, origins: list[str]) -> None:
        self.origins = frozenset(origins)

    def allowed(self, request: HTTPConnection) -> str | None:
        origin = request.headers.get("origin")
        return origin if origin in self.origins else None

    def refuses(self, connection: HTTPConnection) -> bool:
        """A browser page of an origin not on the list (a WebSocket handshake's ``Origin``);
        clients that send none, as mobile apps, are not refused."""
        return "origin" in connection.headers and self.allowed(connection) is None

    def is_preflight(self, request: Request) -> bool:
        return request.method == "OPTIONS" and "access-control-request-method" in request.headers

    def preflight(self, request: Request, methods: list[str]) -> Response:
        """204 with the allowed methods and headers, or a bare 204 for a foreign origin."""
        origin = self.allowed(request)
        response = Response(status_code=204, headers={"Vary": "Origin"})
        if origin and methods:
            response.headers.update(
                {
                    "Access-Control-Allow-Origin": origin,
                    "Access-Control-Allow-Methods": ", ".join(sorted(set(methods))),
                    "Access-Control-Allow-Headers": ALLOW_HEADERS,
                    "Access-Control-Max-Age": "600",
                }
            )
        return response

    def decorate(self, request: Request, response: Response) -> None:
        origin = self.allowed(request)
        if origin:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Expose-Headers"] = EXPOSE_HEADERS
            response.headers["Vary"] = "Origin"
