"""The launcher's worker goes with its master: a function process killed outright (a crash test,
an OOM kill) leaves no worker serving on behind it."""

from __future__ import annotations

import os
import signal
import subprocess
import time

from tests.conftest import LocalStack, start_function


def children(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    return [int(line) for line in found.stdout.split()]


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] != "Z"  # a zombie is gone, only not yet reaped
    except FileNotFoundError:
        return False


def test_a_killed_function_process_leaves_no_worker_behind(stack: LocalStack) -> None:
    _, process = start_function(stack.settings, "chat")
    workers = children(process.pid)
    assert workers, "the launcher runs its app in a worker process"
    os.kill(process.pid, signal.SIGKILL)
    process.wait(10)
    deadline = time.monotonic() + 5
    while any(alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(alive(w) for w in workers)
