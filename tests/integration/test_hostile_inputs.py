"""The bad inputs a security review found, each as it was sent: every one answers a 4xx in the
error envelope on every function it reaches, none a 500, and none reaches the model."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from emulator import devtokens
from tests.conftest import LocalStack

DEEP = b"[" * 30_000  # within the body limit, past the JSON parser's depth
HUGE = b'{"message": ' + b"7" * 5_000 + b"}"  # an integer of 5,000 digits
PUBLIC = [("chat", "/v1/chat"), ("stream", "/v1/chat:stream")]
SCHEDULED = [("cache-maintenance", "/"), ("backup", "/")]


def headers_for(stack: LocalStack, function: str) -> dict[str, str]:
    """A valid caller of ``function``: a user, or Cloud Scheduler's OIDC identity."""
    if function in ("chat", "stream"):
        return stack.auth()
    url = stack.url(function)
    account = devtokens.scheduler_account(stack.settings)
    return {"Authorization": f"Bearer {devtokens.invoker_token(stack.settings, account, url)}"}


def send(stack: LocalStack, function: str, path: str, body: bytes) -> httpx.Response:
    headers = {**headers_for(stack, function), "Content-Type": "application/json"}
    return httpx.post(f"{stack.url(function)}{path}", content=body, headers=headers, timeout=30)


def envelope(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text[:300]
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code and error["request_id"]
    return error


@pytest.mark.parametrize(("function", "path"), PUBLIC + SCHEDULED)
@pytest.mark.parametrize("body", [DEEP, HUGE], ids=["nested-30000", "int-5000-digits"])
def test_unreadable_json_is_a_400_on_every_function(
    stack: LocalStack, function: str, path: str, body: bytes
) -> None:
    error = envelope(send(stack, function, path, body), 400, "invalid_json")
    assert error["message"].startswith("body is not valid JSON")
    assert stack.model_calls()["total"] == 0


@pytest.mark.parametrize(("function", "path"), PUBLIC)
@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b'{"message": "echo: \\ud800x"}', "message"),  # a lone surrogate
        (b'{"message": "\\u0000\\u0000\\u0001\\u0007"}', "message"),  # control characters only
        (b'{"message": "hi", "conversation_id": "__x__"}', "conversation_id"),  # reserved id
        (b'{"message": "hi", "request_id": "__name__"}', "request_id"),
    ],
    ids=["lone-surrogate", "control-only", "reserved-conversation", "reserved-request-id"],
)
def test_bad_text_and_reserved_ids_are_a_422(
    stack: LocalStack, function: str, path: str, body: bytes, field: str
) -> None:
    error = envelope(send(stack, function, path, body), 422, "validation_failed")
    assert error["details"][0]["field"] == field
    assert stack.model_calls()["total"] == 0


def test_a_surrogate_pair_is_fine(stack: LocalStack) -> None:
    answer = send(stack, "chat", "/v1/chat", b'{"message": "echo: \\ud83d\\ude00"}')
    assert answer.status_code == 200 and answer.json()["text"] == "\U0001f600"


@pytest.mark.parametrize("method", ["GET", "DELETE"])
def test_a_reserved_conversation_id_in_the_path_is_not_found(
    stack: LocalStack, method: str
) -> None:
    url = f"{stack.url('chat')}/v1/conversations/__name__"
    envelope(httpx.request(method, url, headers=stack.auth(), timeout=30), 404, "not_found")


def test_a_reserved_page_token_is_a_422(stack: LocalStack) -> None:
    url = f"{stack.url('chat')}/v1/conversations"
    answer = httpx.get(url, params={"page_token": "__x__"}, headers=stack.auth(), timeout=30)
    assert envelope(answer, 422, "validation_failed")["details"][0]["field"] == "page_token"


def test_someone_elses_conversation_as_a_page_token_looks_like_an_unknown_one(
    stack: LocalStack,
) -> None:
    chat = stack.url("chat")
    mine = httpx.post(f"{chat}/v1/chat", json={"message": "hi"}, headers=stack.auth("alice"))
    foreign = mine.json()["conversation_id"]
    url = f"{chat}/v1/conversations"
    as_bob = [
        httpx.get(url, params={"page_token": token}, headers=stack.auth("bob"), timeout=30)
        for token in (foreign, "no-such-conversation")
    ]
    errors = [envelope(answer, 422, "validation_failed") for answer in as_bob]
    assert (
        errors[0]["message"] == errors[1]["message"]
        and errors[0]["details"] == errors[1]["details"]
    )
    # The owner may page from it.
    own = httpx.get(url, params={"page_token": foreign}, headers=stack.auth("alice"), timeout=30)
    assert own.status_code == 200
