"""Structured output and routing by confidence, on the local stack: 100 varied schemas answered
with conforming documents, one repair then 502 for an answer that stays invalid, and tier ``auto``
escalating only unsure answers."""

from __future__ import annotations

import json
import random
from typing import Any

import httpx
import jsonschema_rs
import pytest

from shared.agent.schema import violations
from tests.conftest import LocalStack
from tests.integration.test_agent_tools import sse_events

LEAVES: list[dict[str, Any]] = [
    {"type": "string"},
    {"type": "string", "enum": ["low", "medium", "high"]},
    {"type": "string", "format": "date"},
    {"type": "string", "minLength": 3, "maxLength": 12},
    {"type": "integer", "minimum": 1, "maximum": 5},
    {"type": "integer"},
    {"type": "number", "minimum": -10, "maximum": 10},
    {"type": "boolean"},
    {"type": "string", "nullable": True},
]


def random_schema(rng: random.Random, depth: int = 0) -> dict[str, Any]:
    """An object schema of leaves, arrays and nested objects (within Gemini's subset)."""
    properties: dict[str, Any] = {}
    for i in range(rng.randint(1, 5)):
        roll = rng.random()
        if roll < 0.15 and depth < 3:
            properties[f"nested_{i}"] = random_schema(rng, depth + 1)
        elif roll < 0.3:
            items = rng.choice(LEAVES) if rng.random() < 0.7 else random_schema(rng, depth + 1)
            properties[f"list_{i}"] = {
                "type": "array",
                "items": items,
                "minItems": rng.randint(0, 2),
                "maxItems": rng.randint(2, 4),
            }
        else:
            properties[f"field_{i}"] = dict(rng.choice(LEAVES))
    required = [name for name in properties if rng.random() < 0.7]
    return {"type": "object", "properties": properties, "required": required}


def post(stack: LocalStack, body: dict[str, Any], user: str = "alice") -> httpx.Response:
    return httpx.post(
        f"{stack.url('chat')}/v1/chat", json=body, headers=stack.auth(user), timeout=30
    )


def as_json_schema(schema: Any) -> Any:
    """Gemini's schema subset as plain JSON Schema: ``nullable: true`` becomes a null type."""
    if isinstance(schema, list):
        return [as_json_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    plain = {k: as_json_schema(v) for k, v in schema.items() if k != "nullable"}
    if schema.get("nullable") and "type" in schema:
        plain["type"] = [schema["type"], "null"]
    return plain


def test_a_hundred_varied_schemas_are_answered_with_conforming_data(stack: LocalStack) -> None:
    rng = random.Random(15)
    for n in range(100):
        schema = random_schema(rng)
        response = post(
            stack, {"message": f"Describe ticket {n} please", "response_schema": schema}
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["data"] is not None
        assert violations(body["data"], schema) == [], (schema, body["data"])
        # and by an independent validator (Gemini's `nullable` spelt as JSON Schema's null type)
        assert jsonschema_rs.is_valid(as_json_schema(schema), body["data"]), (schema, body)
    last = stack.model_requests()[-1]
    assert last["response_schema"] is True


def test_an_answer_that_stays_invalid_gets_one_repair_then_502(stack: LocalStack) -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    response = post(stack, {"message": "Give a [invalid_output]", "response_schema": schema})
    assert response.status_code == 502, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_model_output"
    assert "not JSON" in error["message"]
    assert stack.model_calls()["calls"]["gemini-2.5-flash"]["GenerateContent"] == 2  # + repair


def test_one_repair_can_fix_an_answer(stack: LocalStack) -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    response = post(stack, {"message": "Give a [invalid_output_once]", "response_schema": schema})
    assert response.status_code == 200, response.text
    body = response.json()
    assert isinstance(body["data"]["a"], int)
    assert body["usage"]["model_calls"] == 2


def test_a_stream_with_a_schema_sends_the_checked_document_and_its_data(
    stack: LocalStack,
) -> None:
    schema = {"type": "object", "properties": {"mood": {"enum": ["ok", "bad"]}}}
    response = httpx.post(
        f"{stack.url('stream')}/v1/chat:stream",
        json={"message": "How is it going?", "response_schema": schema},
        headers=stack.auth(),
        timeout=30,
    )
    assert response.status_code == 200, response.text
    events = sse_events(response.text)
    names = [n for n, _ in events]
    assert names == ["meta", "delta", "data", "usage", "done"]
    assert dict(events)["data"]["data"]["mood"] in ("ok", "bad")


@pytest.mark.parametrize(
    ("schema", "keyword"),
    [
        ({"type": "object", "$ref": "#/defs/x"}, "$ref"),
        ({"type": "object", "properties": {"a": {"type": "string", "oneOf": []}}}, "oneOf"),
        ({"type": "object", "additionalItems": False}, "additionalItems"),
        ({"type": "tuple"}, "type"),
        ({"type": "object", "properties": {"a": {"type": "string", "pattern": "("}}}, "pattern"),
        ({"type": "integer", "maximum": 1e300}, "maximum"),
        ({"type": "integer", "minimum": True}, "minimum"),
        ({"type": "array", "maxItems": -1}, "maxItems"),
    ],
)
def test_unsupported_schemas_are_422_naming_the_keyword(
    stack: LocalStack, schema: dict[str, Any], keyword: str
) -> None:
    response = post(stack, {"message": "hi", "response_schema": schema})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert keyword in error["message"] or keyword in str(error["details"])
    assert stack.model_calls()["total"] == 0


def test_too_large_or_too_deep_schemas_are_422(stack: LocalStack) -> None:
    deep: dict[str, Any] = {"type": "string"}
    for _ in range(12):
        deep = {"type": "object", "properties": {"x": deep}}
    wide = {
        "type": "object",
        "properties": {f"p{i}": {"type": "string", "description": "d" * 100} for i in range(100)},
    }
    for schema, words in ((deep, "deeper"), (wide, "bytes")):
        response = post(stack, {"message": "hi", "response_schema": schema})
        assert response.status_code == 422, response.text
        assert words in str(response.json()["error"])


def test_auto_tier_keeps_a_confident_answer_on_the_fast_model(stack: LocalStack) -> None:
    response = post(stack, {"message": "Explain caching [avg_logprobs=-0.2]", "tier": "auto"})
    assert response.status_code == 200, response.text
    usage = response.json()["usage"]
    assert usage["model"] == "gemini-2.5-flash"
    assert [m["model"] for m in usage["models"]] == ["gemini-2.5-flash"]
    assert "gemini-2.5-pro" not in stack.model_calls()["calls"]


def test_auto_tier_escalates_an_unsure_answer_to_the_quality_model(stack: LocalStack) -> None:
    response = post(stack, {"message": "Explain caching [avg_logprobs=-2.5]", "tier": "auto"})
    assert response.status_code == 200, response.text
    usage = response.json()["usage"]
    assert usage["model"] == "gemini-2.5-pro"
    assert {m["model"]: m["calls"] for m in usage["models"]} == {
        "gemini-2.5-flash": 1,
        "gemini-2.5-pro": 1,
    }
    assert usage["input_tokens"] == sum(m["input_tokens"] for m in usage["models"])
    assert usage["model_calls"] == 2


def test_auto_tier_escalates_an_answer_cut_short(stack: LocalStack) -> None:
    response = post(stack, {"message": "Explain caching", "tier": "auto", "max_output_tokens": 3})
    assert response.status_code == 200, response.text
    assert [m["model"] for m in response.json()["usage"]["models"]] == [
        "gemini-2.5-flash",
        "gemini-2.5-pro",
    ]


def test_auto_tier_escalates_invalid_structure_before_repairing(stack: LocalStack) -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    response = post(
        stack,
        {"message": "Give a [invalid_output_once]", "response_schema": schema, "tier": "auto"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert isinstance(body["data"]["a"], int)
    assert body["usage"]["model"] == "gemini-2.5-pro"


def test_auto_tier_on_a_stream_sends_only_the_answer_that_stands(stack: LocalStack) -> None:
    response = httpx.post(
        f"{stack.url('stream')}/v1/chat:stream",
        json={"message": "echo: unsure words [avg_logprobs=-3]", "tier": "auto"},
        headers=stack.auth(),
        timeout=30,
    )
    assert response.status_code == 200, response.text
    events = sse_events(response.text)
    deltas = [d["text"] for n, d in events if n == "delta"]
    assert len(deltas) == 1  # held until judged: the fast model's answer was never sent
    usage = dict(events)["usage"]
    assert usage["model"] == "gemini-2.5-pro"


def test_a_structured_answer_after_a_tool_call_is_the_document_everywhere(
    stack: LocalStack,
) -> None:
    """Chat, stream and the stored message agree: the text of a judged answer is the final
    document alone, not the steps before it."""
    schema = {
        "type": "object",
        "properties": {"status": {"type": "string"}},
        "required": ["status"],
    }
    body = {"message": "What is the status of order A-1234?", "response_schema": schema}
    chat = post(stack, body).json()
    assert [c["name"] for c in chat["tool_calls"]] == ["order_status"]
    assert chat["data"]["status"] and chat["text"] == json.dumps(chat["data"], ensure_ascii=False)
    streamed = httpx.post(
        f"{stack.url('stream')}/v1/chat:stream",
        json={**body, "temperature": 1.0},
        headers=stack.auth(),
        timeout=30,
    )
    events = sse_events(streamed.text)
    text = "".join(d["text"] for n, d in events if n == "delta")
    assert json.loads(text) == dict(events)["data"]["data"]
    meta = dict(events)["meta"]
    stored = httpx.get(
        f"{stack.url('chat')}/v1/conversations/{meta['conversation_id']}",
        headers=stack.auth(),
        timeout=10,
    ).json()
    [answer] = [m for m in stored["messages"] if m["role"] == "model"]
    assert answer["text"] == text


def test_an_escalated_answer_after_a_tool_call_uses_the_result_and_calls_nothing(
    stack: LocalStack,
) -> None:
    response = post(
        stack, {"message": "What is the status of order A-1234? [avg_logprobs=-3]", "tier": "auto"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["usage"]["model"] == "gemini-2.5-pro"
    assert "order_status" in body["text"] and body["finish_reason"] == "STOP"
    last = stack.model_requests()[-1]
    assert last["model"] == "gemini-2.5-pro" and last["function_calling"] == "none"
