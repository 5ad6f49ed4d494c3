"""The HTTP plumbing: routing errors, request ids and body parsing, all in the error envelope."""

from __future__ import annotations

import gzip
import json
from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from shared import errors, web
from shared.contracts import ChatRequest
from shared.cors import Cors
from shared.guard import client_ip

METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH"]


async def echo(request: Request, params: dict[str, str]) -> Response:
    body = await web.read_json(request, ChatRequest, max_bytes=2048)
    return JSONResponse({"message": body.message, "params": params})


async def busy(_: Request, __: dict[str, str]) -> Response:
    raise errors.ModelUnavailable("try later", retry_after=7)


async def crash(_: Request, __: dict[str, str]) -> Response:
    raise RuntimeError("secret detail")


router = web.Router(
    [
        web.Route("POST", "/v1/things/{tid}", echo),
        web.Route("GET", "/busy", busy),
        web.Route("GET", "/crash", crash),
    ]
)


async def endpoint(request: Request) -> Response:
    return await router(request)


app = Starlette(routes=[Route("/{path:path}", endpoint, methods=METHODS)])


@pytest.fixture
async def client() -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


def assert_envelope(response: httpx.Response, status: int, code: str) -> dict[str, object]:
    assert response.status_code == status
    error = response.json()["error"]
    assert error["code"] == code
    assert error["request_id"] == response.headers["X-Request-Id"]
    assert error["message"]
    return dict(error)


async def test_route_params_and_request_id_echo(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/things/abc", json={"message": "hi"}, headers={"X-Request-Id": "my-id.1"}
    )
    assert response.status_code == 200
    assert response.json() == {"message": "hi", "params": {"tid": "abc"}}
    assert response.headers["X-Request-Id"] == "my-id.1"


async def test_malformed_request_id_is_replaced(client: httpx.AsyncClient) -> None:
    response = await client.get("/nowhere", headers={"X-Request-Id": "bad id with spaces"})
    assert len(response.headers["X-Request-Id"]) == 32


async def test_unknown_route_and_wrong_method(client: httpx.AsyncClient) -> None:
    assert_envelope(await client.get("/nowhere"), 404, "not_found")
    error = assert_envelope(await client.get("/v1/things/abc"), 405, "method_not_allowed")
    assert error["details"] == [{"allow": ["POST"]}]


async def test_body_errors(client: httpx.AsyncClient) -> None:
    url = "/v1/things/x"
    assert_envelope(
        await client.post(url, content=b"{", headers={"Content-Type": "application/json"}),
        400,
        "invalid_json",
    )
    assert_envelope(
        await client.post(url, content=b"hi", headers={"Content-Type": "text/plain"}),
        415,
        "unsupported_media_type",
    )
    assert_envelope(await client.post(url, json={"message": "x" * 4000}), 413, "payload_too_large")
    error = assert_envelope(
        await client.post(url, json={"messages": "x"}), 422, "validation_failed"
    )
    fields = {d["field"] for d in error["details"]}  # type: ignore[attr-defined]
    assert fields == {"message", "messages"}


async def test_retry_after_and_internal_errors(client: httpx.AsyncClient) -> None:
    response = await client.get("/busy")
    assert_envelope(response, 503, "model_unavailable")
    assert response.headers["Retry-After"] == "7"
    error = assert_envelope(await client.get("/crash"), 500, "internal")
    assert "secret" not in str(error)


def test_every_error_code_is_unique() -> None:
    classes: list[type[errors.AppError]] = [errors.AppError, *errors.AppError.__subclasses__()]
    codes = [cls.code for cls in classes]
    assert len(codes) == len(set(codes))


async def test_after_first_runs_once_even_when_the_first_request_fails() -> None:
    calls: list[int] = []
    once = web.Router([web.Route("GET", "/crash", crash)], after_first=lambda: calls.append(1))

    async def serve(request: Request) -> Response:
        return await once(request)

    transport = httpx.ASGITransport(app=Starlette(routes=[Route("/{path:path}", serve)]))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        assert (await http.get("/crash")).status_code == 500
        assert calls == [1]
        assert (await http.get("/nowhere")).status_code == 404
    assert calls == [1]


def _request(forwarded: str | None, peer: str = "10.1.2.3") -> Request:
    headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded is not None else []
    scope = {"type": "http", "headers": headers, "client": (peer, 5000), "method": "GET"}
    return Request(scope)


@pytest.mark.parametrize(
    ("forwarded", "hops", "expected"),
    [
        ("203.0.113.7", 1, "203.0.113.7"),
        # The client wrote the first two; Cloud Run's front end appended the real address.
        ("1.1.1.1, 9.9.9.9, 203.0.113.7", 1, "203.0.113.7"),
        # Behind a load balancer too: the balancer appended the client, the front end the LB.
        ("1.1.1.1, 203.0.113.7, 35.191.0.1", 2, "203.0.113.7"),
        ("203.0.113.7", 2, "10.1.2.3"),  # fewer entries than trusted hops: the peer
        ("1.1.1.1", 0, "10.1.2.3"),  # the header is not trusted at all
        (None, 1, "10.1.2.3"),
        (" , ,", 1, "10.1.2.3"),
    ],
)
def test_the_client_address_is_taken_where_the_trusted_proxies_wrote_it(
    forwarded: str | None, hops: int, expected: str
) -> None:
    assert client_ip(_request(forwarded), hops) == expected


async def large(_: Request, __: dict[str, str]) -> Response:
    return JSONResponse({"items": [{"title": f"conversation {i}"} for i in range(200)]})


async def small(_: Request, __: dict[str, str]) -> Response:
    return JSONResponse({"status": "ok"})


async def events(_: Request, __: dict[str, str]) -> Response:
    async def body() -> AsyncIterator[bytes]:
        for i in range(100):
            yield f'id: s:{i}\nevent: delta\ndata: {{"text": "{"x" * 40}"}}\n\n'.encode()

    return StreamingResponse(body(), media_type="text/event-stream")


async def refuse(_: Request, __: dict[str, str]) -> Response:
    details: list[dict[str, object]] = [{"field": f"f{i}", "issue": "bad"} for i in range(100)]
    raise errors.ValidationFailed("invalid request", details=details)


gzip_router = web.Router(
    [
        web.Route("GET", "/large", large),
        web.Route("GET", "/small", small),
        web.Route("GET", "/events", events),
        web.Route("GET", "/refuse", refuse),
    ],
    cors=Cors(["https://app.example"]),
    gzip_min_bytes=1024,
)


async def raw_get(path: str, headers: dict[str, str]) -> tuple[httpx.Response, bytes]:
    """The response and its body as sent (httpx would decode it)."""

    async def serve(request: Request) -> Response:
        return await gzip_router(request)

    transport = httpx.ASGITransport(app=Starlette(routes=[Route("/{path:path}", serve)]))
    async with (
        httpx.AsyncClient(transport=transport, base_url="http://t") as http,
        http.stream("GET", path, headers=headers) as response,
    ):
        return response, b"".join([chunk async for chunk in response.aiter_raw()])


async def test_large_json_answers_are_gzipped_for_clients_that_accept_it() -> None:
    plain_response, plain = await raw_get("/large", {"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain_response.headers
    assert plain_response.headers["vary"] == "Accept-Encoding"
    response, packed = await raw_get("/large", {"Accept-Encoding": "br;q=1, gzip;q=0.8"})
    assert response.headers["content-encoding"] == "gzip"
    assert response.headers["vary"] == "Accept-Encoding"
    assert int(response.headers["content-length"]) == len(packed) < len(plain)
    assert gzip.decompress(packed) == plain
    assert response.headers["x-request-id"]


async def test_small_answers_and_streams_are_sent_as_they_are() -> None:
    response, body = await raw_get("/small", {"Accept-Encoding": "gzip"})
    assert "content-encoding" not in response.headers
    assert json.loads(body) == {"status": "ok"}
    response, body = await raw_get("/events", {"Accept-Encoding": "gzip"})
    assert "content-encoding" not in response.headers
    assert "vary" not in response.headers
    assert body.count(b"event: delta") == 100


async def test_large_error_envelopes_are_gzipped_and_cors_keeps_its_vary() -> None:
    headers = {"Accept-Encoding": "gzip", "Origin": "https://app.example"}
    response, packed = await raw_get("/refuse", headers)
    assert response.status_code == 422
    assert response.headers["content-encoding"] == "gzip"
    assert response.headers["vary"] == "Origin, Accept-Encoding"
    error = json.loads(gzip.decompress(packed))["error"]
    assert error["code"] == "validation_failed" and len(error["details"]) == 100
