"""A private local stack for a load run, and the CPU each of its processes used.

Started as ``python -m emulator.stack up`` on free loopback ports with a realistic model latency
and the rate limits lifted (the run measures capacity, not limits); stopped with the run. CPU time
per component (from ``/proc``) over the run names the bottleneck.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from emulator import devtokens
from emulator.settings import StackSettings, on_free_ports
from ops.loadtest.generator import Target
from shared.settings import LOCAL_HOST

COMPONENTS = (
    ("chat", "--target chat "),
    ("stream", "--target stream "),
    ("firestore", "cloud-firestore-emulator"),
    ("redis", "redis-server"),
    ("vertex", "emulator.vertex"),
)


@dataclass(frozen=True)
class ModelLatency:
    """The emulator's latency model: realistic for a fast Gemini model by default."""

    ttft_ms: float = 350.0
    tokens_per_second: float = 200.0
    answer_tokens: int = 120


@contextlib.contextmanager
def private_stack(latency: ModelLatency, users: int) -> Iterator[tuple[Target, int]]:
    """A running stack and a target signing as ``users`` local users; the stack's pid."""
    with tempfile.TemporaryDirectory(prefix="ngx-loadtest-") as state:
        settings = on_free_ports(
            stack_dir=state,
            emulator_ttft_ms=latency.ttft_ms,
            emulator_tokens_per_second=latency.tokens_per_second,
            emulator_answer_tokens=latency.answer_tokens,
            rate_limit_ip_per_minute=10**9,
            rate_limit_tiers={"free": 10**9, "standard": 10**9, "premium": 10**9},
            daily_token_budget=0,
        )
        env = {**os.environ, **_environment(settings)}
        process = subprocess.Popen(
            [sys.executable, "-m", "emulator.stack", "up"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        try:
            _wait_until_up(process, 180)
            tokens = [
                devtokens.local_token(settings, f"load-{u}", ttl_s=4 * 3600) for u in range(users)
            ]
            target = Target(
                chat_url=f"http://{LOCAL_HOST}:{settings.stack_chat_port}",
                stream_url=f"http://{LOCAL_HOST}:{settings.stack_stream_port}",
                headers=lambda user: {"Authorization": f"Bearer {tokens[user]}"},
            )
            yield target, process.pid
        finally:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


def _environment(settings: StackSettings) -> dict[str, str]:
    import json

    env = {}
    for name, value in settings.model_dump().items():
        if name.startswith(("stack_", "emulator_", "rate_limit_")) or name == "daily_token_budget":
            env[f"NGX_{name.upper()}"] = (
                json.dumps(value) if isinstance(value, dict | list) else str(value)
            )
    return env


def _wait_until_up(process: subprocess.Popen[str], timeout_s: float) -> None:
    assert process.stdout is not None
    deadline = time.monotonic() + timeout_s
    seen: list[str] = []
    for line in process.stdout:
        seen.append(line)
        if "local stack is up" in line:
            return
        if time.monotonic() > deadline:
            break
    raise RuntimeError("the local stack did not start:\n" + "".join(seen[-20:]))


def cpu_by_component(root: int) -> dict[str, float]:
    """CPU seconds so far of each component in ``root``'s process tree."""
    parents: dict[int, int] = {}
    found: dict[str, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    stats: dict[int, tuple[str, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            pid = int(entry.name)
            parents[pid] = int(fields[1])
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            stats[pid] = (command, (int(fields[11]) + int(fields[12])) / tick)
    for pid, (command, seconds) in stats.items():
        ancestor = pid
        while ancestor in parents and ancestor not in (root, 0, 1):
            ancestor = parents[ancestor]
        if ancestor != root:
            continue
        name = next((n for n, marker in COMPONENTS if marker in command + " "), "other")
        found[name] = found.get(name, 0.0) + seconds
    return found


def utilisation(
    before: dict[str, float], after: dict[str, float], seconds: float
) -> dict[str, float]:
    """Cores used by each component over a run (1.0 = one core busy all along)."""
    return {
        name: round((after.get(name, 0.0) - before.get(name, 0.0)) / seconds, 3)
        for name in sorted(after)
    }


class CpuSampler:
    """Per-component CPU each second during a run: the busiest 10 s show where saturation is."""

    def __init__(self, root: int) -> None:
        import threading

        self.root = root
        self.samples: list[tuple[float, dict[str, float]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> CpuSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.monotonic(), cpu_by_component(self.root)))
            self._stop.wait(1.0)

    def busiest_window(self, seconds: int = 10) -> dict[str, float]:
        """Cores used per component over the ``seconds`` with the most CPU used in all."""
        best: dict[str, float] = {}
        for (t0, first), (t1, last) in zip(self.samples, self.samples[seconds:], strict=False):
            window = utilisation(first, last, t1 - t0)
            if sum(window.values()) > sum(best.values()):
                best = window
        return best
