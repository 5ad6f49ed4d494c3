"""Spans reach the exporter on SIGTERM under the aio server, where `atexit` does not run."""

from __future__ import annotations

import signal

import httpx

from tests.conftest import LocalStack, start_function


def test_spans_are_flushed_on_sigterm(stack: LocalStack) -> None:
    url, process = start_function(
        stack.settings,
        "chat",
        capture=True,
        NGX_TRACE_EXPORTER="console",
        NGX_TRACE_EXPORT_DELAY_MS="600000",  # the timer never fires: only a flush exports
    )
    try:
        response = httpx.post(
            f"{url}/v1/chat", json={"message": "trace me"}, headers=stack.auth(), timeout=30
        )
        assert response.status_code == 200
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert '"name": "llm.generate"' in output
    assert '"name": "cache.lookup"' in output
    assert '"llm.tokens_out": 48' in output
    assert "spans flushed on SIGTERM" in output
