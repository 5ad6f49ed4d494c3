"""Spans reach the exporter on SIGTERM under the aio server, where `atexit` does not run."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import httpx

from emulator.settings import free_ports
from emulator.stack import ROOT, function_env
from shared import registry
from shared.settings import LOCAL_HOST
from tests.conftest import LocalStack


def test_spans_are_flushed_on_sigterm(stack: LocalStack) -> None:
    port = free_ports(1)[0]
    env = {
        **os.environ,
        **function_env(stack.settings),
        "NGX_TRACE_EXPORTER": "console",
        "NGX_TRACE_EXPORT_DELAY_MS": "600000",  # the timer never fires: only a flush exports
    }
    process = subprocess.Popen(
        registry.launch_command(registry.function("chat"), LOCAL_HOST, port),
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        url = f"http://{LOCAL_HOST}:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        response = httpx.post(
            f"{url}/v1/chat", json={"message": "trace me"}, headers=stack.auth(), timeout=30
        )
        assert response.status_code == 200
        time.sleep(0.5)
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
