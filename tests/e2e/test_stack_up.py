"""`agentctl stack up` as a developer runs it: the printed curl works, Ctrl-C leaves no process
behind, a second stack is refused with a clear line, and a missing prerequisite is named."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import stack_settings

AGENTCTL = str(Path(sys.executable).parent / "agentctl")


def stack_env(state_dir: Path) -> dict[str, str]:
    settings = stack_settings()
    env = {k: v for k, v in os.environ.items() if not k.startswith("NGX_")}
    env.pop("FIRESTORE_EMULATOR_HOST", None)
    env["NGX_STACK_DIR"] = str(state_dir)
    for name in type(settings).model_fields:
        if name.startswith("stack_"):
            env[f"NGX_{name.upper()}"] = str(getattr(settings, name))
    return env


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid``."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def read_until(process: subprocess.Popen[str], marker: str, timeout: float) -> list[str]:
    deadline = time.monotonic() + timeout
    lines: list[str] = []
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
        if marker in line:
            return lines
    raise AssertionError(f"{marker!r} not printed; got {lines}")


@pytest.fixture
def running_stack(
    tmp_path: Path,
) -> Iterator[tuple[subprocess.Popen[str], list[str], dict[str, str]]]:
    env = stack_env(tmp_path / "stack")
    process = subprocess.Popen(
        [AGENTCTL, "stack", "up"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    try:
        lines = read_until(process, "Stop: Ctrl-C", timeout=120)
        yield process, lines, env
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            process.wait(30)


def test_stack_up_curl_works_and_ctrl_c_leaves_nothing(
    running_stack: tuple[subprocess.Popen[str], list[str], dict[str, str]],
) -> None:
    process, lines, env = running_stack
    names = {line.split()[0] for line in lines if line.startswith("  ") and "://" in line}
    assert {
        "firestore",
        "redis",
        "vertex",
        "chat",
        "stream",
        "cache-maintenance",
        "backup",
        "demo-api",
    } <= names
    curl = next(line.strip() for line in lines if line.strip().startswith("curl "))
    assert env["NGX_STACK_CHAT_PORT"] in curl
    answer = json.loads(
        subprocess.run(
            ["bash", "-c", curl], capture_output=True, text=True, timeout=60, check=True
        ).stdout
    )
    assert answer["text"] and answer["usage"]["model"] == "gemini-2.5-flash"
    # The printed curl shows the agent at work: the demo order API answered through a tool.
    assert [call["name"] for call in answer["tool_calls"]] == ["order_status"]
    assert answer["tool_calls"][0]["status"] == "ok"

    second = subprocess.run(
        [AGENTCTL, "stack", "up"], env=env, capture_output=True, text=True, timeout=60
    )
    assert second.returncode == 1
    assert "already running" in second.stderr

    started = descendants(process.pid)
    assert len(started) >= 7
    process.send_signal(signal.SIGINT)
    assert process.wait(30) == 0
    deadline = time.monotonic() + 5
    while any(alive(pid) for pid in started) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [pid for pid in started if alive(pid)] == []


def test_ports_in_use_are_named(
    running_stack: tuple[subprocess.Popen[str], list[str], dict[str, str]],
    tmp_path: Path,
) -> None:
    _, _, env = running_stack
    other = {**env, "NGX_STACK_DIR": str(tmp_path / "other")}
    result = subprocess.run(
        [AGENTCTL, "stack", "up"], env=other, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert "ports already in use" in result.stderr
    assert env["NGX_STACK_CHAT_PORT"] in result.stderr


def test_missing_prerequisite_is_one_clear_line(tmp_path: Path) -> None:
    env = stack_env(tmp_path / "stack")
    env["PATH"] = str(Path(sys.executable).parent)  # no redis-server, java or gcloud here
    result = subprocess.run(
        [AGENTCTL, "stack", "up"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert "missing prerequisite: redis-server not found" in result.stderr
    assert "apt-get install -y redis-server" in result.stderr
    assert "Traceback" not in result.stderr


def process_of(root: int, needle: str) -> int:
    """The pid of the descendant of ``root`` whose command line holds ``needle``."""
    for pid in descendants(root):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if needle in cmdline:
            return pid
    raise AssertionError(f"no process running {needle!r}")


def test_a_dependency_that_dies_is_restarted_and_the_functions_stay_up(
    running_stack: tuple[subprocess.Popen[str], list[str], dict[str, str]],
) -> None:
    """Found by a security review: redis-server dying took the whole stack down."""
    process, lines, env = running_stack
    chat = process_of(process.pid, f"--port {env['NGX_STACK_CHAT_PORT']}")
    os.kill(process_of(process.pid, "redis-server"), signal.SIGKILL)
    said = read_until(process, "redis is back", timeout=60)
    assert any(line.startswith("redis stopped (exit ") for line in said)
    assert process.poll() is None and alive(chat)  # the functions never stopped
    curl = next(line.strip() for line in lines if line.strip().startswith("curl "))
    answer = subprocess.run(["bash", "-c", curl], capture_output=True, text=True, timeout=60)
    assert json.loads(answer.stdout)["text"]
