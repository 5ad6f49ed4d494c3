"""Schemathesis against the running chat and stream functions, from the committed OpenAPI document:
generated requests (valid and invalid) never get a 5xx, and every error is in the envelope."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.generation import GenerationMode

from shared.agent.schema import SchemaRefused, check
from shared.contracts import ID_PATTERN
from tests.conftest import LocalStack

SPEC = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"
# The WebSocket handshake is not HTTP request/response: sessions are fuzzed over the socket
# (tests/integration/test_sessions.py), their plain HTTP 426 here by the hostile-input runs.
schema = schemathesis.openapi.from_path(SPEC).exclude(operation_id="openSession")
CASES: list[str] = []
MIN_CASES = 1000
# The methods functions-framework routes to a function; it answers any other one itself.
FUNCTION_METHODS = {"GET", "POST", "PUT", "DELETE", "OPTIONS", "HEAD", "PATCH"}


def distinct_idempotency_keys(case: Any, n: int) -> None:
    """Keep generated idempotency keys distinct between cases: a key reused with another body is
    correctly refused (422, tested elsewhere), which would read as a rejected valid request."""
    headers = case.headers or {}
    key = headers.get("Idempotency-Key")
    if isinstance(key, str) and key:
        headers["Idempotency-Key"] = f"{key[:240]}#{n}"
    body = case.body
    request_id = body.get("request_id") if isinstance(body, dict) else None
    if isinstance(request_id, str) and re.match(ID_PATTERN, request_id):
        body["request_id"] = f"{request_id[:50]}-{n}"


def checkable_response_schema(case: Any) -> None:
    """Drop a generated ``response_schema`` over the limits JSON Schema cannot state (8 KiB in
    all, 8 levels, 128 properties, a pattern that compiles): refusing it is right (422, tested in
    test_structured_output), but would read as a rejected valid request."""
    positive = case.meta is None or case.meta.generation.mode == GenerationMode.POSITIVE
    body = case.body
    if positive and isinstance(body, dict) and isinstance(body.get("response_schema"), dict):
        try:
            check(body["response_schema"])
        except SchemaRefused:
            body["response_schema"] = None


def envelope_on_errors(ctx: Any, response: Any, case: Any) -> None:
    """Every 4xx/5xx body is the standard error envelope with the request id.

    Methods such as TRACE never reach the function: functions-framework's router answers them.
    """
    if response.status_code < 400 or case.method.upper() not in FUNCTION_METHODS:
        return None
    assert response.headers.get("content-type", [""])[0].startswith("application/json"), (
        f"{response.status_code} {case.method} {case.path}: {response.text[:200]!r}"
    )
    body = response.json()
    error = body["error"]
    assert set(error) == {"code", "message", "details", "request_id"}, body
    assert error["request_id"] == response.headers["x-request-id"][0], body
    return None


def model_502s_are_invalid_output(ctx: Any, response: Any, case: Any) -> None:
    """The only 502 a generated request may get: a response schema the model could not meet."""
    if response.status_code != 502:
        return None
    body = case.body if isinstance(case.body, dict) else {}
    assert body.get("response_schema"), response.text[:300]
    assert response.json()["error"]["code"] == "invalid_model_output", response.text[:300]
    return None


@pytest.fixture(scope="module")
def token(local_stack: LocalStack) -> str:
    return local_stack.token("fuzzer", ttl_s=3600)


@schema.parametrize()
@settings(
    max_examples=260,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_generated_requests_never_fail_the_server(
    case: Any, local_stack: LocalStack, token: str
) -> None:
    base = local_stack.url("stream" if case.path == "/v1/chat:stream" else "chat")
    distinct_idempotency_keys(case, len(CASES))
    checkable_response_schema(case)
    headers = {"Authorization": f"Bearer {token}"}
    case.call_and_validate(
        base_url=base,
        headers=headers,
        additional_checks=[envelope_on_errors, model_502s_are_invalid_output],
        timeout=30,
    )
    CASES.append(case.path)


def test_at_least_a_thousand_cases_ran() -> None:
    print(f"{len(CASES)} generated cases ran")
    assert len(CASES) >= MIN_CASES, f"only {len(CASES)} generated cases ran"
