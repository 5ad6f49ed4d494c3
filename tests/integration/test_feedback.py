"""Feedback on answers: the owner rates one of its answers (thumbs or stars, reasons from a fixed
list, a short comment); the last rating wins and shows on the message; another user, a user's
own message, an unknown message and every malformed body are refused in the standard error
schema; the rating goes with the user's erasure."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import LocalStack


def chat(stack: LocalStack, user: str = "alice") -> dict[str, Any]:
    response = httpx.post(
        f"{stack.url('chat')}/v1/chat",
        json={"message": "Rate this answer"},
        headers=stack.auth(user),
        timeout=30,
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def rate(
    stack: LocalStack, conversation: str, message: str, body: Any, user: str = "alice"
) -> httpx.Response:
    url = f"{stack.url('chat')}/v1/conversations/{conversation}/messages/{message}/feedback"
    return httpx.post(url, json=body, headers=stack.auth(user), timeout=30)


def messages(stack: LocalStack, conversation: str, user: str = "alice") -> list[dict[str, Any]]:
    url = f"{stack.url('chat')}/v1/conversations/{conversation}"
    found: list[dict[str, Any]] = httpx.get(url, headers=stack.auth(user), timeout=30).json()[
        "messages"
    ]
    return found


def test_the_owner_rates_an_answer_and_the_last_rating_wins(stack: LocalStack) -> None:
    answer = chat(stack)
    cid, mid = answer["conversation_id"], answer["message_id"]
    first = rate(stack, cid, mid, {"thumbs": "down", "reasons": ["incorrect", "not_cited"]})
    assert first.status_code == 200, first.text
    assert first.json()["thumbs"] == "down" and first.json()["message_id"] == mid
    again = rate(stack, cid, mid, {"stars": 4, "comment": "Better on a\nsecond read."})
    assert again.status_code == 200, again.text
    [model] = [m for m in messages(stack, cid) if m["role"] == "model"]
    assert model["feedback"] == {
        "thumbs": None,
        "stars": 4,
        "reasons": [],
        "comment": "Better on a\nsecond read.",
    }


def test_only_the_owners_answers_can_be_rated(stack: LocalStack) -> None:
    answer = chat(stack)
    cid, mid = answer["conversation_id"], answer["message_id"]
    user_message = next(m for m in messages(stack, cid) if m["role"] == "user")["message_id"]
    good = {"thumbs": "up"}
    cases = [
        (rate(stack, cid, mid, good, user="mallory"), 404),
        (rate(stack, cid, "nosuchmessage", good), 404),
        (rate(stack, cid, "..", good), 404),
        (rate(stack, "nosuchconversation", mid, good), 404),
        (rate(stack, cid, user_message, good), 422),
    ]
    for response, status in cases:
        assert response.status_code == status, response.text
        assert set(response.json()["error"]) >= {"code", "message", "request_id"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "body"),
        ({"thumbs": "up", "stars": 5}, "body"),
        ({"stars": 6}, "stars"),
        ({"stars": 0}, "stars"),
        ({"stars": 10**40}, "stars"),
        ({"thumbs": "sideways"}, "thumbs"),
        ({"thumbs": "up", "reasons": ["bribed"]}, "reasons"),
        ({"thumbs": "up", "reasons": ["helpful", "helpful"]}, "reasons"),
        ({"thumbs": "up", "reasons": ["other"] * 6}, "reasons"),
        ({"thumbs": "up", "comment": "x" * 1001}, "comment"),
        ({"thumbs": "up", "comment": "bell \u0007"}, "comment"),
        ({"thumbs": "up", "extra": 1}, "extra"),
        ([{"thumbs": "up"}], "body"),
    ],
)
def test_malformed_feedback_is_refused_and_nothing_is_kept(
    stack: LocalStack, body: Any, field: str
) -> None:
    answer = chat(stack)
    cid, mid = answer["conversation_id"], answer["message_id"]
    response = rate(stack, cid, mid, body)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "validation_failed"
    [model] = [m for m in messages(stack, cid) if m["role"] == "model"]
    assert model["feedback"] is None


def test_a_rating_goes_with_the_users_erasure(stack: LocalStack, firestore_db: Any) -> None:
    answer = chat(stack)
    cid, mid = answer["conversation_id"], answer["message_id"]
    assert rate(stack, cid, mid, {"thumbs": "up"}).status_code == 200
    erased = httpx.delete(f"{stack.url('chat')}/v1/me", headers=stack.auth(), timeout=30)
    assert erased.status_code == 200, erased.text
    assert rate(stack, cid, mid, {"thumbs": "up"}).status_code == 404
