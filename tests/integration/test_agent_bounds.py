"""The loop's bounds: a model that calls tools forever stops at the step bound; a hanging tool is
cut at its timeout and the answer still arrives; a huge result is cut before the model sees it."""

from __future__ import annotations

import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from emulator.stack import demo_tools_file
from tests.conftest import LocalStack, start_function


@pytest.fixture
def agent_chat(stack: LocalStack, tmp_path: Path) -> Iterator[str]:
    """A chat function whose tools add a hanging one and a huge one to the demo tools."""
    demo = stack.demo_api
    extra = textwrap.dedent(
        f"""
        [tools.slow_report]
        kind = "http"
        description = "A report that takes a long time."
        url = "{demo}/slow?seconds=30"
        allow_hosts = ["127.0.0.1"]
        timeout_s = 1

        [tools.big_report]
        kind = "http"
        description = "A very large report."
        url = "{demo}/big?kb=512"
        allow_hosts = ["127.0.0.1"]
        max_response_bytes = 1048576
        """
    )
    path = tmp_path / "tools.toml"
    path.write_text(demo_tools_file(stack.settings).read_text() + extra)
    url, process = start_function(
        stack.settings, "chat", NGX_TOOLS_FILE=str(path), NGX_AGENT_MAX_STEPS="3"
    )
    yield url
    process.kill()


def ask(stack: LocalStack, url: str, message: str) -> dict[str, Any]:
    response = httpx.post(
        f"{url}/v1/chat", json={"message": message}, headers=stack.auth(), timeout=60
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_a_model_calling_tools_forever_stops_at_the_step_bound(
    stack: LocalStack, agent_chat: str
) -> None:
    body = ask(stack, agent_chat, 'tool!:order_status {"order_id": "A-7"}')
    assert body["finish_reason"] == "max_steps"
    assert isinstance(body["tool_calls"], list) and len(body["tool_calls"]) == 3
    assert body["text"]  # the last call, with tools turned off, answered in text
    usage = body["usage"]
    assert isinstance(usage, dict) and usage["model_calls"] == 4
    last = stack.model_requests()[-1]
    assert last["function_calling"] == "none" and last["calls"] == []


def test_a_hanging_tool_is_cut_at_its_timeout_and_the_answer_arrives(
    stack: LocalStack, agent_chat: str
) -> None:
    body = ask(stack, agent_chat, "tool:slow_report")
    [call] = body["tool_calls"]
    assert call["status"] == "timeout"
    assert 1000 <= call["latency_ms"] < 5000
    assert "timeout" in str(body["text"])
    assert body["finish_reason"] == "STOP"


def test_a_huge_tool_result_is_cut_to_the_token_budget(stack: LocalStack, agent_chat: str) -> None:
    body = ask(stack, agent_chat, "tool:big_report")
    [call] = body["tool_calls"]
    assert call["status"] == "ok"
    assert "truncated" in call["summary"]
    # The model saw about the budget (2000 tokens ≈ 8000 characters), not 512 KiB.
    answered = stack.model_requests()[-1]
    assert 8000 <= answered["function_response_chars"] < 9000


def test_independent_calls_of_one_turn_run_concurrently(stack: LocalStack, agent_chat: str) -> None:
    started = time.monotonic()
    body = ask(
        stack,
        agent_chat,
        'tool:slow_report tool:order_status {"order_id": "B-2"} tool:slow_report',
    )
    calls = body["tool_calls"]
    assert isinstance(calls, list) and [c["name"] for c in calls] == [
        "slow_report",
        "order_status",
        "slow_report",
    ]
    # Two one-second timeouts side by side: the turn took about one second, not two.
    assert all(c["status"] == "timeout" for c in calls if c["name"] == "slow_report")
    assert time.monotonic() - started < 1.9
