"""Request options on chat and stream: temperature, max_output_tokens and language reach the
model, are part of the cache key, and out-of-range values get a 422 naming the field."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import LocalStack

MODEL = "gemini-2.5-flash"


def chat(stack: LocalStack, **body: Any) -> httpx.Response:
    return httpx.post(
        f"{stack.url('chat')}/v1/chat",
        json={"message": "options please", **body},
        headers=stack.auth(),
        timeout=30,
    )


def calls(stack: LocalStack) -> int:
    return int(stack.model_calls()["calls"].get(MODEL, {}).get("GenerateContent", 0))


def test_max_output_tokens_bounds_the_answer_on_chat_and_stream(stack: LocalStack) -> None:
    short = chat(stack, max_output_tokens=5)
    assert short.status_code == 200, short.text
    assert short.json()["finish_reason"] == "MAX_TOKENS"
    assert short.json()["usage"]["output_tokens"] == 5
    streamed = httpx.post(
        f"{stack.url('stream')}/v1/chat:stream",
        json={"message": "stream options", "max_output_tokens": 3},
        headers=stack.auth(),
        timeout=30,
    )
    assert 'event: done\ndata: {"finish_reason":"MAX_TOKENS"}' in streamed.text


def test_more_than_the_service_allows_gets_the_service_limit(stack: LocalStack) -> None:
    capped = chat(stack, max_output_tokens=65536)
    assert capped.status_code == 200, capped.text
    assert capped.json()["finish_reason"] == "STOP"  # the emulator's 48 tokens fit the limit


def test_every_option_is_part_of_the_cache_key(stack: LocalStack) -> None:
    variants: list[dict[str, Any]] = [
        {},
        {"temperature": 0.1},
        {"temperature": 0.3},
        {"max_output_tokens": 40},
        {"language": "fr"},
        {"language": "pt-BR"},
    ]
    first = [chat(stack, **options).json() for options in variants]
    assert calls(stack) == len(variants)  # each variant is its own entry
    again = [chat(stack, **options).json() for options in variants]
    assert [a["usage"]["cached"] for a in again] == [True] * len(variants)
    assert [a["text"] for a in again] == [f["text"] for f in first]
    assert first[4]["text"] != first[0]["text"]  # the language reached the model's prompt
    assert calls(stack) == len(variants)


def test_a_temperature_above_the_cache_limit_is_never_cached(stack: LocalStack) -> None:
    answers = [chat(stack, temperature=1.5).json() for _ in range(2)]
    assert [a["usage"]["cached"] for a in answers] == [False, False]
    assert calls(stack) == 2


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"temperature": 2.5}, "temperature"),
        ({"temperature": -0.1}, "temperature"),
        ({"temperature": "warm"}, "temperature"),
        ({"temperature": False}, "temperature"),
        ({"max_output_tokens": True}, "max_output_tokens"),
        ({"max_output_tokens": 5.5}, "max_output_tokens"),
        ({"max_output_tokens": 0}, "max_output_tokens"),
        ({"max_output_tokens": 65537}, "max_output_tokens"),
        ({"max_output_tokens": 10**30}, "max_output_tokens"),
        ({"language": "not a tag"}, "language"),
        ({"language": "en_US"}, "language"),
        ({"language": "x" * 40}, "language"),
        ({"language": "__x__"}, "language"),
    ],
)
def test_out_of_range_options_are_refused_naming_the_field(
    stack: LocalStack, options: dict[str, Any], field: str
) -> None:
    for function, path in (("chat", "/v1/chat"), ("stream", "/v1/chat:stream")):
        response = httpx.post(
            f"{stack.url(function)}{path}",
            json={"message": "hi", **options},
            headers=stack.auth(),
            timeout=30,
        )
        assert response.status_code == 422, response.text
        details = response.json()["error"]["details"]
        assert field in [d.get("field") for d in details], details
    assert stack.model_calls()["calls"] == {}


def test_gemini_prompt_cache_tokens_are_reported_and_priced_at_their_discount(
    stack: LocalStack,
) -> None:
    """The stable prefix (system instruction and tool declarations) is served from the model's
    implicit cache the second time: usage says how many input tokens, and the cost drops."""
    body = {"message": "Explain the cache of the model please", "temperature": 1.0}
    first, second = (
        httpx.post(
            f"{stack.url('chat')}/v1/chat", json=body, headers=stack.auth(), timeout=30
        ).json()["usage"]
        for _ in range(2)
    )
    assert first["cached_input_tokens"] == 0 and first["cached"] is False
    assert 0 < second["cached_input_tokens"] < second["input_tokens"] == first["input_tokens"]
    assert second["models"][0]["cached_input_tokens"] == second["cached_input_tokens"]
    assert 0 < second["cost_usd"] < first["cost_usd"]
    # Flash: 0.30 USD per million input tokens, a cached one a quarter of it.
    saved = second["cached_input_tokens"] * 0.30 * 0.75 / 1e6
    assert first["cost_usd"] - second["cost_usd"] == pytest.approx(saved, abs=1e-8)
