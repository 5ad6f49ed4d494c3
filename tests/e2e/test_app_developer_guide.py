"""The quick start of docs/app-developers.md, run as written against the stack: the curl prints a
streamed answer, and the React Native-style script streams one over a WebSocket session."""

from __future__ import annotations

import os
import re
import subprocess

from tests.conftest import LocalStack
from tests.e2e.frontend import CLIENT, ROOT, build_playground

GUIDE = ROOT / "docs" / "app-developers.md"


def quick_start_lines() -> list[str]:
    """The command lines of the guide's quick start, in order."""
    section = GUIDE.read_text().split("## Quick start", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, re.DOTALL)
    return [line for block in blocks for line in block.splitlines() if line.strip()]


def on_this_stack(line: str, stack: LocalStack) -> str:
    """A command with the default local ports replaced by the test stack's."""
    for name, port in (("chat", 8081), ("stream", 8082)):
        line = line.replace(f"http://127.0.0.1:{port}", stack.url(name))
    return line


def test_the_quick_start_streams_an_answer_with_curl_and_a_script(stack: LocalStack) -> None:
    lines = quick_start_lines()
    assert lines[0].startswith("make dev")
    assert lines[1] == "TOKEN=$(.venv/bin/agentctl token --user alice)"
    [curl] = [line for line in lines if line.startswith("curl -N")]
    [script] = [line for line in lines if "react-native-style.mjs" in line]
    env = {**os.environ, "TOKEN": stack.token("alice")}

    streamed = subprocess.run(
        ["bash", "-c", on_this_stack(curl, stack)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert streamed.returncode == 0, streamed.stderr
    events = re.findall(r"^event: (\w+)$", streamed.stdout, re.MULTILINE)
    assert events[0] == "meta" and events[-2:] == ["usage", "done"], events
    assert "tool_call" in events and events.count("delta") >= 2, events

    build_playground()  # `make dev` builds the client; the test does what it does
    ran = subprocess.run(
        ["bash", "-c", script],
        cwd=CLIENT,
        env={**env, "NGX_CHAT_URL": stack.url("chat"), "NGX_STREAM_URL": stack.url("stream")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ran.returncode == 0, ran.stderr
    assert "A-1234" in ran.stdout, ran.stdout
    assert "[tool order_status]" in ran.stderr and "gemini" in ran.stderr, ran.stderr
