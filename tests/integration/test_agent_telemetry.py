"""Each tool call is a span and one log line (tool, status, latency; never its arguments), and each
escalation a log line: what the agent.tool_calls and agent.escalations metrics count."""

from __future__ import annotations

import json
import signal

import httpx

from tests.conftest import LocalStack, start_function


def test_tool_calls_and_escalations_are_logged_and_traced(stack: LocalStack) -> None:
    url, process = start_function(
        stack.settings,
        "chat",
        capture=True,
        NGX_TRACE_EXPORTER="console",
        NGX_TRACE_EXPORT_DELAY_MS="600000",
    )
    secret_order = "Z-9876"
    try:
        for body in (
            {"message": f"What is the status of order {secret_order}?"},
            {"message": "Explain caching [avg_logprobs=-3]", "tier": "auto"},
        ):
            response = httpx.post(f"{url}/v1/chat", json=body, headers=stack.auth(), timeout=30)
            assert response.status_code == 200, response.text
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    logged = [line for line in output.splitlines() if line.startswith('{"severity"')]
    lines = [json.loads(line) for line in logged]
    [tool_line] = [line for line in lines if line.get("message") == "tool call"]
    assert tool_line["logger"] == "agent.tools"
    assert tool_line["tool"] == "order_status" and tool_line["status"] == "ok"
    assert tool_line["latency_ms"] > 0 and tool_line["cache_hit"] is False
    [escalation] = [line for line in lines if line.get("message") == "agent escalation"]
    assert escalation["reason"] == "low_confidence"
    assert escalation["from_model"] == "gemini-2.5-flash" and escalation["to_tier"] == "quality"
    assert secret_order not in "\n".join(logged)  # the arguments are in no log line
    assert '"name": "agent.tool"' in output
    assert '"tool.name": "order_status"' in output
    assert '"tool.status": "ok"' in output
