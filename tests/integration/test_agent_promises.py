"""Agent promises beyond the main paths: the total deadline ends a loop, the offered tools and the
response schema are part of the cache key, an answer that used a tool with side effects is never
served from the cache, and an API key's tool scope offers that tool."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from emulator.stack import demo_tools_file
from shared.auth.apikeys import ApiKeyStore
from shared.memorystore import Memorystore
from tests.conftest import LocalStack, start_function

EXTRA_TOOLS = """
[tools.slow_report]
kind = "http"
description = "A report that takes a long time."
url = "{demo}/slow?seconds=30"
allow_hosts = ["127.0.0.1"]
timeout_s = 5

[tools.order_peek]
kind = "http"
description = "Peek at an order, never cached."
url = "{demo}/orders/{{order_id}}"
allow_hosts = ["127.0.0.1"]
credential = {{ env = "NGX_DEMO_API_TOKEN" }}

[tools.order_peek.arguments.order_id]
type = "string"
"""


@pytest.fixture
def chat_with_more_tools(stack: LocalStack, tmp_path: Path) -> Iterator[str]:
    """A chat process whose tools file adds a slow tool and an uncached one; a 1 s deadline."""
    path = tmp_path / "tools.toml"
    extra = textwrap.dedent(EXTRA_TOOLS).format(demo=stack.demo_api)
    path.write_text(demo_tools_file(stack.settings).read_text() + extra)
    url, process = start_function(
        stack.settings, "chat", NGX_TOOLS_FILE=str(path), NGX_AGENT_DEADLINE_S="1"
    )
    yield url
    process.kill()
    process.wait(10)


def ask(url: str, stack: LocalStack, **body: Any) -> dict[str, Any]:
    response = httpx.post(f"{url}/v1/chat", json=body, headers=stack.auth(), timeout=60)
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


def test_the_total_deadline_ends_the_loop_and_the_answer_still_arrives(
    stack: LocalStack, chat_with_more_tools: str
) -> None:
    body = ask(chat_with_more_tools, stack, message="tool!:slow_report")
    assert body["finish_reason"] == "deadline"
    assert body["text"]
    assert [call["name"] for call in body["tool_calls"]] == ["slow_report"]
    assert body["tool_calls"][0]["latency_ms"] < 5000  # cut by the deadline, not its timeout


def test_an_answer_that_used_an_uncached_tool_is_never_served_from_the_cache(
    stack: LocalStack, chat_with_more_tools: str
) -> None:
    message = 'tool:order_peek {"order_id": "C-1"}'
    bodies = [
        ask(chat_with_more_tools, stack, message=message, tools=["order_peek"]) for _ in range(2)
    ]
    assert [b["usage"]["cached"] for b in bodies] == [False, False]
    assert [b["tool_calls"][0]["status"] for b in bodies] == ["ok", "ok"]
    assert len(stack.demo_requests()) == 2  # the tool ran for each


def test_the_offered_tools_and_the_response_schema_are_part_of_the_cache_key(
    stack: LocalStack,
) -> None:
    first_schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    other_schema = {"type": "object", "properties": {"b": {"type": "integer"}}}
    variants: list[dict[str, Any]] = [
        {},
        {"tools": []},
        {"response_schema": first_schema},
        {"response_schema": other_schema},
    ]
    url = stack.url("chat")
    first = [ask(url, stack, message="Tell me about clouds.", **v) for v in variants]
    assert [f["usage"]["cached"] for f in first] == [False] * 4  # each its own entry
    again = [ask(url, stack, message="Tell me about clouds.", **v) for v in variants]
    assert [a["usage"]["cached"] for a in again] == [True] * 4


async def test_an_api_keys_tool_scope_offers_that_tool(
    stack: LocalStack, firestore_db: Any
) -> None:
    store = Memorystore(stack.client_settings())
    keys = ApiKeyStore(firestore_db, store)
    with_scope, _ = await keys.create("orders-app", scopes=("chat", "tools:orders"))
    without, _ = await keys.create("plain-app", scopes=("chat",))
    await store.close()
    offered = []
    async with httpx.AsyncClient(timeout=30) as client:
        for key in (with_scope, without):
            response = await client.post(
                f"{stack.url('chat')}/v1/chat",
                json={"message": "Tell me about rain."},
                headers={"X-API-Key": key},
            )
            assert response.status_code == 200, response.text
            offered.append(stack.model_requests()[-1]["tools"])
    assert offered == [["order_status", "cancel_order", "handoff"], ["order_status", "handoff"]]
