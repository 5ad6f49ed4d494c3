"""The TypeScript client: types generated from docs/openapi.json, built, and tested with node's own
test runner: the SSE parser, retry, session and stream suites, then every route on the stack."""

from __future__ import annotations

import os
import subprocess

from tests.conftest import LocalStack
from tests.e2e.frontend import CLIENT, install_client, npm


def test_typescript_client_against_the_stack(stack: LocalStack) -> None:
    install_client()
    stack.fault("gemini-2.5-flash", slow_stream_ms=40)  # streams long enough to cut and abort
    env = {
        **os.environ,
        "NGX_CHAT_URL": stack.url("chat"),
        "NGX_STREAM_URL": stack.url("stream"),
        "NGX_VERTEX_ADMIN": stack.vertex_admin,
        "NGX_TOKEN": stack.token("ts-client", ttl_s=600),
        "NGX_TOKEN_CONVERSATIONS": stack.token("ts-conversations", ttl_s=600),
        "NGX_TOKEN_ORDERS": stack.token("ts-orders", ttl_s=600, scopes=["tools:orders"]),
        "NGX_TOKEN_HANDOFF": stack.token("ts-handoff", ttl_s=600),
        "NGX_TOKEN_OPERATOR": stack.token("ts-operator", ttl_s=600, scopes=["handoffs"]),
        "NGX_TOKEN_ERASE": stack.token("ts-erase", ttl_s=600),
    }
    result = subprocess.run(
        [npm(), "test"], cwd=CLIENT, env=env, capture_output=True, text=True, timeout=300
    )
    failures = result.stdout.split("\nnot ok ")[1:]
    assert result.returncode == 0, "\n".join(f[:3000] for f in failures) or result.stderr[-4000:]
    assert "# fail 0" in result.stdout
    counts = {
        name: int(result.stdout.rsplit(f"# {name} ", 1)[1].split()[0]) for name in ("tests", "pass")
    }
    assert counts["pass"] == counts["tests"] >= 48, (
        counts
    )  # every suite ran: SSE, retry, session, stream, stack
