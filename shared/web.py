"""HTTP plumbing shared by every function: routing, request ids, body parsing, error envelope.

functions-framework hands each function every path; `Router` dispatches by method and path so a
function's `main.py` stays a table of thin handlers.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, cast

from pydantic import BaseModel, ValidationError
from starlette.convertors import PathConvertor, register_url_convertor
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.websockets import WebSocket

from shared import compression, errors, telemetry
from shared.admission import current as admission_current
from shared.auth.principal import Principal
from shared.contracts import ErrorBody, ErrorEnvelope
from shared.cors import Cors
from shared.logs import parse_trace_headers, request_id_var, subject_var, trace_var
from shared.settings import get_settings

if TYPE_CHECKING:
    from shared.chat import Caller
    from shared.guard import Guard
    from shared.registry import FunctionSpec

log = logging.getLogger("ngx.http")

Handler = Callable[[Request, dict[str, str]], Awaitable[Response]]
SocketHandler = Callable[[WebSocket], Awaitable[None]]
ModelT = TypeVar("ModelT", bound=BaseModel)

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}\Z")
REQUEST_ID_HEADER = "X-Request-Id"


@dataclass(frozen=True)
class Route:
    """One method and path template (``/v1/conversations/{id}``) bound to a handler.

    ``scope`` names the permission the caller needs; ``None`` makes the route public (health).
    """

    method: str
    template: str
    handler: Handler
    scope: str | None = None
    deferred_limits: bool = False  # see `shared.admission`

    @property
    def pattern(self) -> re.Pattern[str]:
        return _compile(self.template)


def _compile(template: str) -> re.Pattern[str]:
    parts = re.split(r"\{(\w+)\}", template)
    regex = "".join(
        f"(?P<{part}>[^/]+)" if i % 2 else re.escape(part) for i, part in enumerate(parts)
    )
    return re.compile(f"^{regex}\\Z")


def request_id_of(request: Request) -> str:
    """The caller's ``X-Request-Id`` when well formed, otherwise a fresh one."""
    given = request.headers.get(REQUEST_ID_HEADER, "")
    return given if _REQUEST_ID.match(given) else uuid.uuid4().hex


def current_request_id() -> str:
    """The id of the request being handled (set by `Router`)."""
    return request_id_var.get() or uuid.uuid4().hex


def error_response(exc: errors.AppError, request_id: str) -> JSONResponse:
    """The standard envelope for an error, with ``Retry-After`` when the error carries one."""
    body = ErrorEnvelope(
        error=ErrorBody(
            code=exc.code, message=exc.message, details=exc.details, request_id=request_id
        )
    )
    headers = {**exc.headers, REQUEST_ID_HEADER: request_id}
    if exc.retry_after is not None:
        headers["Retry-After"] = str(max(1, exc.retry_after))
    return JSONResponse(body.model_dump(), status_code=exc.status, headers=headers)


class _AnyPath(PathConvertor):
    regex = "(?s:.*)"  # Starlette's ".*" stops at a line break


def route_every_path() -> None:
    """Let every request path reach the function, line breaks included.

    functions-framework sends ``/{path:path}`` to the function, but Starlette's path pattern does
    not match a decoded ``%0A``: such requests got the framework's plain-text 404 instead of the
    error envelope. The framework builds its routes after it loads the function's module, so a
    function calls this at import (`runtime.init_process` does).
    """
    register_url_convertor("path", _AnyPath())


class Router:
    """Dispatches a request to its route, answering every failure in the error envelope.

    Non-public routes go through ``guard`` (authentication, scope, rate limits) first; the
    caller is then available to the handler as `principal(request)`. With ``gzip_min_bytes``, JSON
    answers that large are gzip-compressed for clients that accept it (`shared.compression`).
    """

    def __init__(
        self,
        routes: list[Route],
        guard: Callable[[], Guard] | None = None,
        cors: Cors | None = None,
        after_first: Callable[[], None] | None = None,
        sockets: Mapping[str, SocketHandler] | None = None,
        gzip_min_bytes: int | None = None,
    ) -> None:
        self._routes = [(route, route.pattern) for route in routes]
        self.sockets: dict[str, SocketHandler] = dict(sockets or {})  # path → endpoint
        self._guard = guard
        self._cors = cors
        self._after_first = after_first  # run once, when the first response is ready
        self._gzip_min_bytes = gzip_min_bytes  # None: never compress

    @classmethod
    def serve(
        cls,
        spec: FunctionSpec,
        handlers: Mapping[str, Handler | SocketHandler],
        guard: Callable[[], Guard] | None = None,
        cors: Cors | None = None,
        after_first: Callable[[], None] | None = None,
        gzip_min_bytes: int | None = None,
    ) -> Router:
        """A router for a registered function: its routes bound to ``handlers`` by operation name.

        A route without a handler, or a handler for no route, fails at import, so a function serves
        exactly the routes the registry (and so the OpenAPI document and the stack) lists. A
        WebSocket route's handler lands in `sockets` (the launcher mounts them); a plain HTTP
        request to its path gets 426. JSON answers are compressed from ``gzip_min_bytes`` (default:
        the `gzip_min_bytes` setting).
        """
        wanted = {route.operation for route in spec.routes}
        if wanted != set(handlers):
            missing, extra = sorted(wanted - set(handlers)), sorted(set(handlers) - wanted)
            raise RuntimeError(f"{spec.name}: handlers missing {missing}, not registered {extra}")
        routes = [
            Route(
                r.method, r.path, cast(Handler, handlers[r.operation]), r.scope, r.deferred_limits
            )
            if not r.websocket
            else Route(r.method, r.path, _upgrade_required)
            for r in spec.routes
        ]
        sockets = {
            r.path: cast(SocketHandler, handlers[r.operation]) for r in spec.routes if r.websocket
        }
        if gzip_min_bytes is None:
            gzip_min_bytes = get_settings().gzip_min_bytes
        return cls(
            routes,
            guard=guard,
            cors=cors,
            after_first=after_first,
            sockets=sockets,
            gzip_min_bytes=gzip_min_bytes,
        )

    def _methods(self, path: str) -> list[str]:
        return [route.method for route, pattern in self._routes if pattern.match(path)]

    def _match(self, method: str, path: str) -> tuple[Route, dict[str, str]]:
        allowed: list[str] = []
        for route, pattern in self._routes:
            found = pattern.match(path)
            if found is None:
                continue
            if route.method == method:
                return route, found.groupdict()
            allowed.append(route.method)
        if allowed:
            methods = sorted(set(allowed))
            raise errors.MethodNotAllowed(
                f"{method} is not allowed on {path}",
                details=[{"allow": methods}],
                headers={"Allow": ", ".join(methods)},
            )
        raise errors.NotFound(f"no route for {path}")

    async def __call__(self, request: Request) -> Response:
        request_id = request_id_of(request)
        rid_token = request_id_var.set(request_id)
        headers = request.headers
        traceparent, cloud_trace = headers.get("traceparent"), headers.get("x-cloud-trace-context")
        trace_token = trace_var.set(parse_trace_headers(traceparent, cloud_trace))
        started = time.perf_counter()
        subject_token = subject_var.set(None)
        span = telemetry.server_span(
            f"{request.method} {request.url.path}", traceparent, cloud_trace
        )
        try:
            with span:  # the whole request, its log line included, in the request's span
                return self._finish(request, await self._answer(request, request_id), started)
        finally:
            subject_var.reset(subject_token)
            trace_var.reset(trace_token)
            request_id_var.reset(rid_token)
            if self._after_first is not None:
                after_first, self._after_first = self._after_first, None
                after_first()

    async def _answer(self, request: Request, request_id: str) -> Response:
        """The route's answer, or the envelope of whatever went wrong."""
        try:
            if self._cors is not None and self._cors.is_preflight(request):
                response = self._cors.preflight(request, self._methods(request.url.path))
            else:
                response = await self._dispatch(request)
        except errors.AppError as exc:
            response = error_response(exc, request_id)
        except Exception:
            log.exception("unhandled error")
            response = error_response(errors.AppError("internal error"), request_id)
        response.headers[REQUEST_ID_HEADER] = request_id
        return response

    def _finish(self, request: Request, response: Response, started: float) -> Response:
        """CORS headers, compression and the request's log line."""
        if self._cors is not None:
            self._cors.decorate(request, response)
        if self._gzip_min_bytes is not None:  # after CORS, which sets Vary: Origin outright
            accepted = request.headers.getlist("accept-encoding")
            compression.compress(response, accepted, self._gzip_min_bytes)
        log.info(
            "request",
            extra={
                "httpRequest": {
                    "requestMethod": request.method,
                    "requestUrl": request.url.path,
                    "status": response.status_code,
                    "latency": f"{time.perf_counter() - started:.6f}s",
                }
            },
        )
        return response

    async def _dispatch(self, request: Request) -> Response:
        route, params = self._match(request.method, request.url.path)
        if route.scope is None or self._guard is None:
            return await route.handler(request, params)
        guard = self._guard()
        principal_, admission = await guard.admit(request, route.scope, route.deferred_limits)
        request.state.principal = principal_
        subject_var.set(guard.pseudonym(principal_))
        if admission is None:
            return await route.handler(request, params)
        token = admission_current.set(admission)
        try:
            response = await route.handler(request, params)
            await admission.settle()  # a deferred check that no round trip settled
        except errors.AppError as exc:
            if admission.pending:
                await admission.settle()  # refused: the 429 wins, as it would have first
            exc.headers = {**admission.headers(), **exc.headers}
            raise
        finally:
            admission_current.reset(token)
        response.headers.update(admission.headers())
        return response


async def _upgrade_required(request: Request, _: dict[str, str]) -> Response:
    raise errors.UpgradeRequired(
        f"{request.url.path} is a WebSocket endpoint: open it with the WebSocket handshake",
        headers={"Upgrade": "websocket"},
    )


def caller(request: Request) -> Caller:
    """The authenticated caller of a guarded route, as the chat service knows it."""
    from shared.chat import Caller

    found = principal(request)
    return Caller(subject=found.subject, tier=found.tier, scopes=found.scopes)


def principal(request: Request) -> Principal:
    """The authenticated caller of a guarded route."""
    found: Principal = request.state.principal
    return found


async def read_json(request: Request, model: type[ModelT], max_bytes: int) -> ModelT:
    """Parse and validate a JSON body: 415 wrong type, 413 too big, 400 bad JSON, 422 bad fields."""
    return validate(model, await read_json_value(request, max_bytes))


async def read_json_value(
    request: Request, max_bytes: int, media_types: tuple[str, ...] = ("application/json",)
) -> Any:
    """A JSON body, parsed but not validated: 415 wrong type, 413 too big, 400 bad JSON."""
    content_type = request.headers.get("content-type", "")
    if content_type.split(";", 1)[0].strip().lower() not in media_types:
        raise errors.UnsupportedMediaType(
            f"Content-Type must be {' or '.join(media_types)}, got {content_type or 'none'!r}"
        )
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise errors.PayloadTooLarge(f"body exceeds {max_bytes} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > max_bytes:
            raise errors.PayloadTooLarge(f"body exceeds {max_bytes} bytes")
    return parse_json(bytes(body))


# A JSON escape of a UTF-16 surrogate: only then can a parsed string hold a lone one.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def parse_json(body: bytes) -> Any:
    """JSON from a request body: 400 for what is not JSON, nested beyond the parser's depth or
    holding an integer too long to read; 422 for a string with a lone surrogate (invalid Unicode,
    which could not be stored or sent on)."""
    try:
        data: Any = json.loads(body)
    except RecursionError:
        raise errors.InvalidJson("body is not valid JSON: nested too deeply") from None
    except (UnicodeDecodeError, ValueError) as exc:  # ValueError: also integers past 4300 digits
        raise errors.InvalidJson(f"body is not valid JSON: {str(exc)[:200]}") from None
    if _SURROGATE_ESCAPE.search(body):
        where = _lone_surrogate(data, "")
        if where is not None:
            raise errors.ValidationFailed(
                f"invalid request: {where or 'body'}: contains invalid Unicode (a lone surrogate)",
                details=[{"field": where or "body", "issue": "invalid Unicode (lone surrogate)"}],
            )
    return data


def _lone_surrogate(value: Any, path: str) -> str | None:
    """The dotted path of the first string holding a lone surrogate, if any (iterative walk)."""
    stack: list[tuple[Any, str]] = [(value, path)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return where
        elif isinstance(item, dict):
            for key, child in item.items():
                stack.append((key, where))
                stack.append((child, f"{where}.{key}" if where else str(key)))
        elif isinstance(item, list):
            stack.extend(
                (child, f"{where}.{i}" if where else str(i)) for i, child in enumerate(item)
            )
    return None


def read_query(request: Request, model: type[ModelT]) -> ModelT:
    """Validate query parameters (each given once) into ``model``; 422 names the bad ones."""
    return validate(model, dict(request.query_params))


def _field(err: Any) -> str:
    """The dotted path of a failed field; a missing or unknown union tag names the tag field."""
    path = ".".join(str(p) for p in err["loc"])
    if err["type"] in ("union_tag_invalid", "union_tag_not_found"):
        tag = str(err.get("ctx", {}).get("discriminator", "")).strip("'")
        path = f"{path}.{tag}" if path else tag
    return path or "body"


def validate(model: type[ModelT], data: Any) -> ModelT:
    """``model`` from ``data``, or 422 with one detail per bad field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        details = [{"field": _field(err), "issue": err["msg"]} for err in exc.errors()]
        summary = "; ".join(f"{d['field']}: {d['issue']}" for d in details)
        raise errors.ValidationFailed(f"invalid request: {summary}", details=details) from None
